"""What a named optimizer is, recorded on it for the curvature tools.

``jol.adam(lr, b1)`` and the other named optimizers carry a :class:`Rule` on their
``update`` function (the attribute :data:`ATTRIBUTE`): the rule's name, its learning rate,
its momentum-like coefficient and, for the adaptive rules, the hyperparameters of their
diagonal preconditioner. ``jol.curvature.stability_threshold`` and
``preconditioned_sharpness`` read it, so the threshold and the preconditioner always
belong to the optimizer that trains. The transformation itself is unchanged: optax,
``inject_hyperparams`` and ``nnx.Optimizer`` see an ordinary
``GradientTransformationExtraArgs``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

ATTRIBUTE = "jaxopt_lab_rule"


class Preconditioner(NamedTuple):
    """The diagonal :math:`P` an adaptive rule divides the gradient by, as its state gives it.

    ``kind``: ``"adam"`` (:math:`P = \\sqrt{\\hat\\nu} + \\epsilon`, :math:`\\hat\\nu` bias
    corrected with ``b2`` when ``bias_correction``), ``"rms"`` (:math:`\\sqrt{\\nu + \\epsilon}`
    with ``eps_in_sqrt``, else :math:`\\sqrt{\\nu} + \\epsilon`), ``"adagrad"``
    (:math:`\\epsilon + \\sqrt{r}`, or :math:`\\sqrt{r + \\epsilon}` with ``eps_in_sqrt``).
    """

    kind: str
    eps: Any
    b2: Any = None  # decay of nu, for the bias correction
    bias_correction: bool = False
    eps_in_sqrt: bool = False
    eps_root: Any = 0.0  # optax's eps inside the square root of Adam


class Rule(NamedTuple):
    """A named optimizer's identity: see the module docstring."""

    name: str  # "sgd", "momentum", "momentum_ema", "nesterov", "adam", "rmsprop", ...
    learning_rate: Any  # a scalar (maybe traced) or a schedule
    coefficient: Any = None  # beta (momentum forms, nesterov), b1 (adam), rmsprop's momentum
    preconditioner: Preconditioner | None = None


def tag(tx: optax.GradientTransformationExtraArgs, rule: Rule) -> Any:
    """``tx`` with ``rule`` recorded on its update function; returns ``tx``."""
    setattr(tx.update, ATTRIBUTE, rule)
    return tx


def rule_of(optimizer: Any) -> Rule | None:
    """The :class:`Rule` recorded on ``optimizer`` (a named optimizer of jaxopt_lab), or None."""
    return getattr(getattr(optimizer, "update", None), ATTRIBUTE, None)
