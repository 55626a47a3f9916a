"""Sharpness during training: lambda_max next to the optimizer's stability threshold."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._types import Params, ScalarOrSchedule
from jaxopt_lab._validation import (
    check_bool,
    check_choice,
    check_count,
    check_learning_rate,
    check_tolerance,
)
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._operator import (
    BATCH_NORM,
    HessianOperator,
    hvp_operator,
    num_examples,
)
from jaxopt_lab.curvature._precondition import (
    diagonal_preconditioner,
    has_estimate,
    precondition,
    stability_threshold,
)
from jaxopt_lab.transforms._rule import rule_of


class SharpnessState(NamedTuple):
    """State of :class:`SharpnessCallback`."""

    vector: Params  # pytree like params, unit norm: the last top eigenvector (warm start)
    key: jax.Array  # PRNG key for Lanczos restarts
    preconditioned_vector: Params = None  # the same for P^-1/2 H P^-1/2 (or None)


def unit_start(params: Params, key: jax.Array) -> Params:
    """A random unit vector shaped like ``params``: a callback's first Lanczos start."""
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.fold_in(key, 0), flat.shape, flat.dtype)
    return unravel(v / jnp.linalg.norm(v))


def loop_operator(
    loss_fn: Callable[..., jax.Array],
    params: Params,
    model: Any,
    data: Any,
    batch_size: int | None,
    batch_norm: str = "running",
) -> HessianOperator:
    """The Hessian operator a callback builds inside the training loop.

    One device: the training loop owns the placement (a sweep already runs callbacks
    under ``shard_map`` over its runs, where a nested data mesh fails to trace). An NNX
    model comes as the module (``model``), whose ``nnx.Param`` state is ``params``.
    """
    return hvp_operator(
        loss_fn,
        params if model is None else model,
        data,
        batch_size=batch_size,
        devices=jax.local_devices()[:1],
        batch_norm=batch_norm,
    )


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: `data` holds arrays
class SharpnessCallback:
    """A ``jol.train`` callback recording :math:`\\lambda_{\\max}` every ``every`` steps.

    Follows the callback contract of ``jol.train``: ``every`` (static), ``init(params) ->
    state``, ``__call__(step, params, state) -> (state, metrics)``, traced inside the
    compiled training loop. Build it with :func:`sharpness_callback`.
    """

    loss_fn: Callable[..., jax.Array] | HessianOperator
    data: Any
    every: int
    learning_rate: ScalarOrSchedule | None
    batch_size: int | None
    tol: float
    max_matvecs: int | None
    seed: int
    preconditioned: bool = False
    optimizer: Any = None
    batch_norm: str = "running"

    def init(self, params: Params) -> SharpnessState:
        """A random unit start vector shaped like ``params`` (two with ``preconditioned``)."""
        key = jax.random.key(self.seed)
        v = unit_start(params, key)
        return SharpnessState(
            vector=v, key=key, preconditioned_vector=v if self.preconditioned else None
        )

    def _operator(self, params: Params, model: Any) -> HessianOperator:
        if isinstance(self.loss_fn, HessianOperator):  # a GGN, Fisher, ... built by the user
            return self.loss_fn.with_params(params)
        return loop_operator(
            self.loss_fn, params, model, self.data, self.batch_size, self.batch_norm
        )

    def _top(self, op: HessianOperator, v0: Params, key: jax.Array, step: jax.Array):
        eig = eigenvalues(
            op,
            k=1,
            tol=self.tol,
            max_matvecs=self.max_matvecs,
            v0=v0,
            key=jax.random.fold_in(key, step),
        )
        return eig, jax.tree.map(lambda x: x[0], eig.vectors)

    def __call__(
        self,
        step: jax.Array,
        params: Params,
        state: SharpnessState,
        *,
        model: Any = None,
        opt_state: Any = None,
        optimizer: Any = None,
    ) -> tuple[SharpnessState, dict[str, jax.Array]]:
        # the run's own optimizer (passed by the loop: a sweep's run with its traced
        # hyperparameters) when it says what it is, else the one given to the callback
        tx = optimizer if rule_of(optimizer) is not None else self.optimizer
        op = self._operator(params, model)
        eig, vector = self._top(op, state.vector, state.key, step)
        dtype = eig.values.dtype
        metrics = {
            "sharpness": eig.values[0],
            "sharpness_converged": eig.converged[0].astype(dtype),
            "sharpness_matvecs": eig.num_matvecs.astype(dtype),
        }
        lr = self.learning_rate
        if lr is None and rule_of(tx) is not None:
            lr = rule_of(tx).learning_rate
        if lr is not None:
            rate = lr(step) if callable(lr) else lr
            metrics["2/learning_rate"] = 2.0 / jnp.asarray(rate, dtype)
        threshold = stability_threshold(tx, step, learning_rate=self.learning_rate)
        if threshold is not None:
            metrics["stability_threshold"] = threshold[0].astype(dtype)
        if self.preconditioned:
            if opt_state is None:
                raise ValueError(
                    "`sharpness_callback(preconditioned=True)` reads the preconditioner from "
                    "the optimizer state, which this loop did not pass; use it in jol.train "
                    "or jol.sweep."
                )
            diag = diagonal_preconditioner(opt_state, optimizer=tx)
            peig, pvector = self._top(
                precondition(op, diag), state.preconditioned_vector, state.key, step + 1
            )
            seen = has_estimate(opt_state)  # NaN before the first update: no preconditioner yet
            metrics["preconditioned_sharpness"] = jnp.where(seen, peig.values[0], jnp.nan)
            metrics["preconditioned_sharpness_converged"] = peig.converged[0].astype(dtype)
            state = state._replace(preconditioned_vector=pvector)
        return state._replace(vector=vector), metrics


def sharpness_callback(
    loss_fn: Callable[..., jax.Array] | HessianOperator,
    data: Any = None,
    *,
    every: int,
    learning_rate: ScalarOrSchedule | None = None,
    preconditioned: bool = False,
    optimizer: Any = None,
    batch_norm: str = "running",
    batch_size: int | None = None,
    tol: float = 1e-3,
    max_matvecs: int | None = 30,
    seed: int = 0,
) -> SharpnessCallback:
    r"""Records the sharpness :math:`\lambda_{\max}` on a fixed data subset during training,
    next to the optimizer's stability threshold.

    Gradient descent on the local quadratic is stable only while
    :math:`\alpha < 2/\lambda_{\max}` (lecture 000), so the history gets ``"sharpness"``
    next to ``"2/learning_rate"`` (the learning rate, or schedule, at that step),
    ``"stability_threshold"`` (the threshold of the rule that trains:
    :func:`stability_threshold`, e.g. :math:`(2 + 2\beta)/\alpha` with heavy-ball
    momentum), ``"sharpness_converged"`` (1.0 or 0.0) and ``"sharpness_matvecs"`` (its cost
    in Hessian-vector products). With ``preconditioned=True`` it also records
    ``"preconditioned_sharpness"`` :math:`\lambda_{\max}(P^{-1} H)`, with :math:`P` read from
    the run's optimizer state (Adam, RMSProp, AdaGrad: :func:`preconditioned_sharpness`):
    for Adam that is what meets its threshold :math:`(2 + 2\beta_1)/((1 - \beta_1)\alpha)`.
    Each evaluation runs Lanczos (:func:`eigenvalues`, k=1) warm-started from the previous
    top eigenvector, kept in the callback state, so it usually converges in a few
    Hessian-vector products.

    Args:
      loss_fn: ``loss_fn(params, batch)`` as given to ``jol.train`` (``loss_fn(params)``
        when ``data`` is None); or a curvature operator built on the subset
        (:func:`ggn_operator`, :func:`fisher_operator`, :func:`hvp_operator`), whose
        matrix is then tracked at the run's parameters (its data and any fixed model
        state stay those it was built with; omit ``data``).
      data: a fixed subset (pytree with a leading example axis), the same at every
        evaluation so the values are comparable.
      every: evaluate at steps where ``step % every == 0``.
      learning_rate: a scalar or schedule ``step -> rate``; None: the optimizer's own
        (a named optimizer of jaxopt_lab carries it), or no bound.
      preconditioned: also track the preconditioned sharpness.
      optimizer: the transformation that trains (``jol.adam(...)``): its rule sets the
        threshold, its ``eps``/``b2`` the preconditioner. ``jol.train`` and ``jol.sweep``
        also hand each run's own optimizer to the callback, which uses it when it is a
        named optimizer of jaxopt_lab (in a sweep, each run's threshold then follows its
        own hyperparameters).
      batch_norm: for an NNX model with batch norm, ``"running"`` (the Hessian of the
        evaluation-mode loss) or ``"batch"`` (of the training-mode loss, batch statistics
        over ``data``). Use ``"batch"`` for the preconditioned sharpness of such a model:
        a parameter that batch norm cancels in training (a bias before it) never gets a
        gradient, so Adam's :math:`P` there stays at :math:`\epsilon`, while the
        evaluation-mode Hessian is not zero there, and their product would dwarf the
        rest by orders of magnitude.
      batch_size: examples per Hessian-vector product batch over ``data``.
      tol: Lanczos relative residual tolerance.
      max_matvecs: products per evaluation, at most.
      seed: seed of the random start vector.

    Returns:
      A :class:`SharpnessCallback`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 3.0, 7.0]) * w**2)
      >>> cb = jol.curvature.sharpness_callback(f, every=10, optimizer=jol.momentum(0.1, 0.9))
      >>> state, metrics = cb(0, jnp.ones(3), cb.init(jnp.ones(3)))
      >>> round(float(metrics["sharpness"]), 4), round(float(metrics["stability_threshold"]), 4)
      (7.0, 38.0)
    """
    if isinstance(loss_fn, HessianOperator):
        if data is not None:
            raise ValueError(
                f"`data` must be None with a {type(loss_fn).__name__}: the operator holds "
                "its data already."
            )
    elif not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable or a curvature operator, got {loss_fn!r}.")
    every = check_count(every, "every", fix="E.g. every=100.")
    if learning_rate is not None:
        check_learning_rate("learning_rate", learning_rate)
    check_bool("preconditioned", preconditioned)
    check_choice("batch_norm", batch_norm, BATCH_NORM)
    if optimizer is not None and not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "`optimizer` must be the optax transformation that trains (e.g. jol.adam(1e-3)), "
            f"got {type(optimizer).__name__}."
        )
    rule = rule_of(optimizer)
    if preconditioned and rule is not None and rule.preconditioner is None:
        raise ValueError(
            f"`preconditioned=True` needs an adaptive optimizer (Adam, RMSProp, AdaGrad), "
            f"whose state holds a diagonal preconditioner; `optimizer` is {rule.name}, which "
            "has none: drop preconditioned=True (its threshold bounds the plain sharpness)."
        )
    if data is not None:
        num_examples(data)
    if max_matvecs is not None:
        max_matvecs = check_count(
            max_matvecs, "max_matvecs", fix="E.g. max_matvecs=30, or None for the default."
        )
    if batch_size is not None:
        batch_size = check_count(batch_size, "batch_size", fix="E.g. 256, or None for all at once.")
    check_tolerance("tol", tol, "1e-3")
    return SharpnessCallback(
        loss_fn=loss_fn,
        data=data,
        every=every,
        learning_rate=learning_rate,
        batch_size=batch_size,
        tol=tol,
        max_matvecs=max_matvecs,
        seed=seed,
        preconditioned=preconditioned,
        optimizer=optimizer,
        batch_norm=batch_norm,
    )
