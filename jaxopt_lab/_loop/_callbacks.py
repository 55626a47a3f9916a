"""The callback hook of :func:`jaxopt_lab.train` and :func:`jaxopt_lab.sweep`."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Protocol, runtime_checkable

import jax

from jaxopt_lab._types import Params


@runtime_checkable
class Callback(Protocol):
    """Something evaluated inside the compiled training loop every ``every`` steps.

    Step ``t`` counts the updates applied so far: the callback sees the parameters
    :math:`\\theta_t` *before* update ``t``, at every ``t`` in ``0, 1, ..., steps`` with
    ``t % every == 0`` (``t = steps`` is the final parameters). It runs under
    ``lax.cond`` inside ``lax.scan`` (and ``vmap`` in a sweep): on other steps its
    state passes through unchanged and its metrics are NaN. It must therefore be
    traceable: no Python control flow on array values, no side effects.

    Its metrics land in ``history[name]`` with one entry per logged step
    (``t % log_every == 0``), so choose ``every`` as a multiple of ``log_every``:
    values computed at steps that are not logged are not kept (the state is).

    The whole training state is there for a callback that asks: a ``__call__`` that
    accepts the keyword arguments ``opt_state`` (the optimizer state, e.g. Adam's moments),
    ``model_state`` (the model's other state: BatchNorm statistics, ``state=`` of a
    functional model; None without), ``model`` (for a Flax NNX model, the module in
    evaluation mode; None otherwise) or ``optimizer`` (the run's optax transformation; in
    a sweep, ``make_optimizer`` of the run's traced hyperparameters), or ``**kwargs``,
    gets them. For an NNX model
    ``params`` is the ``nnx.State`` the optimizer acts on.

    Attributes:
      every: a static Python ``int >= 1``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> class ParamNorm:
      ...     every = 10
      ...     def init(self, params):
      ...         return None
      ...     def __call__(self, step, params, state):
      ...         sq = sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
      ...         return state, {"param_norm": jnp.sqrt(sq)}
      >>> loss_fn = lambda params, batch: jnp.mean((batch * params["w"] - 1.0) ** 2)
      >>> result = jol.train(loss_fn, {"w": jnp.zeros(())}, jol.sgd(0.1), jnp.ones(4),
      ...                    steps=20, key=None, callbacks=(ParamNorm(),), progress=False)
      >>> result.history["param_norm"][[0, 1, 10]]  # evaluated at steps 0, 10, 20
      array([0.       ,       nan, 0.8926258], dtype=float32)
    """

    every: int

    def init(self, params: Params) -> Any:
        """Returns the callback's initial state (any pytree, ``None`` for none)."""
        ...

    def __call__(
        self, step: jax.Array, params: Params, state: Any
    ) -> tuple[Any, dict[str, jax.Array]]:
        """Returns ``(new_state, metrics)``; ``metrics`` maps names to scalar arrays.

        ``step`` is an int32 scalar (traced); ``params`` are :math:`\\theta_t`.
        """
        ...


EXTRAS = ("opt_state", "model_state", "model", "optimizer")
"""The keyword arguments a callback may accept, besides ``step, params, state``."""


@functools.cache
def _accepted(call: Any) -> frozenset[str]:
    try:
        parameters = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: the basic signature
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset(EXTRAS)
    return frozenset(p.name for p in parameters if p.name in EXTRAS and p.kind != p.POSITIONAL_ONLY)


def accepted_extras(callback: Any) -> frozenset[str]:
    """Which of :data:`EXTRAS` ``callback.__call__`` accepts."""
    call = type(callback).__call__ if not inspect.isfunction(callback) else callback
    try:
        return _accepted(call)
    except TypeError:  # unhashable callable
        return _accepted.__wrapped__(call)


def call_callback(callback: Any, step: Any, params: Any, state: Any, **extras: Any) -> Any:
    """``callback(step, params, state, **the extras it accepts)``."""
    wanted = accepted_extras(callback)
    return callback(step, params, state, **{k: v for k, v in extras.items() if k in wanted})
