"""Delta-bar-delta: per-parameter learning rates (Jacobs, 1988; lecture 003)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_learning_rate, check_nonnegative, check_unit_interval
from jaxopt_lab.transforms._common import cast_like, check_float_params, check_update_args


class DeltaBarDeltaState(NamedTuple):
    """State of :func:`scale_by_delta_bar_delta`."""

    learning_rates: optax.Updates  # pytree like params, params' dtype: per-parameter eps
    delta_bar: optax.Updates  # pytree like params, params' dtype: averaged gradient


def scale_by_delta_bar_delta(
    learning_rate: jax.typing.ArrayLike,
    kappa: jax.typing.ArrayLike,
    phi: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike,
) -> optax.GradientTransformationExtraArgs:
    r"""Delta-bar-delta step :math:`u = -\epsilon \odot g` with adapted rates :math:`\epsilon`.

    Lecture 003, in its order:

    .. math::
      \theta \leftarrow \theta - \epsilon \odot \delta(t), \qquad
      \epsilon \leftarrow \epsilon + \Delta\epsilon, \qquad
      \Delta\epsilon = \begin{cases} \kappa & \bar\delta(t-1)\,\delta(t) > 0 \\
        -\phi\,\epsilon & \bar\delta(t-1)\,\delta(t) < 0 \\ 0 & \text{otherwise}\end{cases}

    with :math:`\delta(t) = \nabla_\theta J` and
    :math:`\bar\delta(t) = (1-\gamma)\delta(t) + \gamma\bar\delta(t-1)`,
    :math:`\bar\delta(0) = 0`. Rates grow linearly while the gradient keeps its sign
    and shrink geometrically when it flips. The rates start at ``learning_rate``.

    Because the rates are the state, this block already includes the learning rate and
    the minus sign: it is the whole optimizer.

    Args:
      learning_rate: the initial rate :math:`\epsilon_0 \ge 0` (a scalar, not a schedule).
      kappa: additive increase :math:`\kappa \ge 0`.
      phi: multiplicative decrease :math:`\phi \in [0, 1)`.
      gamma: averaging coefficient :math:`\gamma \in [0, 1)` of :math:`\bar\delta`.

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Concrete hyperparameters are checked at
      construction; traced ones are not.

    References:
      Lecture 003 (Favaro), "Delta-bar-delta Algorithm"; R. A. Jacobs, "Increased rates
      of convergence through learning rate adaptation", Neural Networks 1(4), 1988.
    """
    if callable(learning_rate):
        raise TypeError(
            "`learning_rate` of delta_bar_delta must be a number: the rates adapt "
            "themselves. Pass the initial rate, e.g. 0.01, instead of a schedule."
        )
    check_learning_rate("learning_rate", learning_rate, schedule=False)
    check_nonnegative("kappa", kappa, "0.01")
    check_unit_interval("phi", phi, "0.1")
    check_unit_interval("gamma", gamma, "0.5")

    def init_fn(params):
        check_float_params(params)
        rates = jax.tree.map(lambda p: jnp.full_like(p, learning_rate), params)
        return DeltaBarDeltaState(learning_rates=rates, delta_bar=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.delta_bar, params)

        def new_rate(g, eps, dbar):
            agree = dbar * g
            inc = jnp.where(agree > 0, cast_like(kappa, eps), jnp.zeros_like(eps))
            dec = jnp.where(agree < 0, cast_like(phi, eps) * eps, jnp.zeros_like(eps))
            return eps + inc - dec

        def new_delta_bar(g, dbar):
            return cast_like(1 - gamma, dbar) * g + cast_like(gamma, dbar) * dbar

        steps = jax.tree.map(lambda g, eps: -eps * g, updates, state.learning_rates)
        rates = jax.tree.map(new_rate, updates, state.learning_rates, state.delta_bar)
        delta_bar = jax.tree.map(new_delta_bar, updates, state.delta_bar)
        return steps, DeltaBarDeltaState(learning_rates=rates, delta_bar=delta_bar)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
