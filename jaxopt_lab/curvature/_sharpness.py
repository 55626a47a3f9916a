"""Sharpness during training: lambda_max next to the stability bound 2 / learning_rate."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._types import Params, ScalarOrSchedule
from jaxopt_lab._validation import check_count, check_learning_rate, check_tolerance
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._operator import hvp_operator, num_examples


class SharpnessState(NamedTuple):
    """State of :class:`SharpnessCallback`."""

    vector: Params  # pytree like params, unit norm: the last top eigenvector (warm start)
    key: jax.Array  # PRNG key for Lanczos restarts


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: `data` holds arrays
class SharpnessCallback:
    """A ``jol.train`` callback recording :math:`\\lambda_{\\max}` every ``every`` steps.

    Follows the callback contract of ``jol.train``: ``every`` (static), ``init(params) ->
    state``, ``__call__(step, params, state) -> (state, metrics)``, traced inside the
    compiled training loop. Build it with :func:`sharpness_callback`.
    """

    loss_fn: Callable[..., jax.Array]
    data: Any
    every: int
    learning_rate: ScalarOrSchedule | None
    batch_size: int | None
    tol: float
    max_matvecs: int | None
    seed: int

    def init(self, params: Params) -> SharpnessState:
        """A random unit start vector shaped like ``params``."""
        key = jax.random.key(self.seed)
        flat, unravel = ravel_pytree(params)
        v = jax.random.normal(jax.random.fold_in(key, 0), flat.shape, flat.dtype)
        return SharpnessState(vector=unravel(v / jnp.linalg.norm(v)), key=key)

    def __call__(
        self, step: jax.Array, params: Params, state: SharpnessState, *, model: Any = None
    ) -> tuple[SharpnessState, dict[str, jax.Array]]:
        # One device: the training loop owns the placement (a sweep already runs this under
        # `shard_map` over its runs, where a nested data mesh fails to trace). An NNX model
        # comes as the module (`model`), whose `nnx.Param` state is `params`.
        op = hvp_operator(
            self.loss_fn,
            params if model is None else model,
            self.data,
            batch_size=self.batch_size,
            devices=jax.local_devices()[:1],
        )
        eig = eigenvalues(
            op,
            k=1,
            tol=self.tol,
            max_matvecs=self.max_matvecs,
            v0=state.vector,
            key=jax.random.fold_in(state.key, step),
        )
        vector = jax.tree.map(lambda x: x[0], eig.vectors)
        metrics = {
            "sharpness": eig.values[0],
            "sharpness_converged": eig.converged[0].astype(eig.values.dtype),
            "sharpness_matvecs": eig.num_matvecs.astype(eig.values.dtype),
        }
        if self.learning_rate is not None:
            lr = self.learning_rate(step) if callable(self.learning_rate) else self.learning_rate
            metrics["2/learning_rate"] = 2.0 / jnp.asarray(lr, eig.values.dtype)
        return state._replace(vector=vector), metrics


def sharpness_callback(
    loss_fn: Callable[..., jax.Array],
    data: Any = None,
    *,
    every: int,
    learning_rate: ScalarOrSchedule | None = None,
    batch_size: int | None = None,
    tol: float = 1e-3,
    max_matvecs: int | None = 30,
    seed: int = 0,
) -> SharpnessCallback:
    r"""Records the sharpness :math:`\lambda_{\max}(H)` on a fixed data subset during training.

    Gradient descent on the local quadratic is stable only while
    :math:`\alpha < 2/\lambda_{\max}` (lecture 000), so the history gets ``"sharpness"``
    next to ``"2/learning_rate"`` (the learning rate, or schedule, at that step),
    ``"sharpness_converged"`` (1.0 or 0.0) and ``"sharpness_matvecs"`` (its cost in
    Hessian-vector products). Each evaluation runs Lanczos
    (:func:`eigenvalues`, k=1) warm-started from the previous top eigenvector, kept in the
    callback state, so it usually converges in a few Hessian-vector products.

    Args:
      loss_fn: ``loss_fn(params, batch)`` as given to ``jol.train`` (``loss_fn(params)``
        when ``data`` is None).
      data: a fixed subset (pytree with a leading example axis), the same at every
        evaluation so the values are comparable.
      every: evaluate at steps where ``step % every == 0``.
      learning_rate: a scalar or schedule ``step -> rate``; None records no bound.
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
      >>> cb = jol.curvature.sharpness_callback(f, every=10, learning_rate=0.1)
      >>> state, metrics = cb(0, jnp.ones(3), cb.init(jnp.ones(3)))
      >>> round(float(metrics["sharpness"]), 4), round(float(metrics["2/learning_rate"]), 4)
      (7.0, 20.0)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}.")
    every = check_count(every, "every", fix="E.g. every=100.")
    if learning_rate is not None:
        check_learning_rate("learning_rate", learning_rate)
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
    )
