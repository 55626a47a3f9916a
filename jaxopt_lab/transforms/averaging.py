"""Polyak (iterate) averaging as the last transformation of a chain."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_choice, check_unit_interval
from jaxopt_lab.transforms._common import (
    cast_like,
    check_float_params,
    check_update_args,
    safe_increment,
)


class PolyakAveragingState(NamedTuple):
    """State of :func:`polyak_averaging`."""

    count: jax.Array  # int32 scalar: number of iterates averaged so far (t)
    averaged: optax.Params  # pytree like params, params' dtype: the running average


def polyak_averaging(
    *, kind: Literal["uniform", "ema"] = "uniform", decay: jax.typing.ArrayLike | None = None
) -> optax.GradientTransformationExtraArgs:
    r"""Keeps an average of the iterates; place it last in a chain.

    Passes the updates through unchanged and records the iterate they lead to,
    :math:`\theta^t = \theta^{t-1} + u^t`, into

    * ``kind="uniform"`` (lecture 003): :math:`\hat\theta^t = \frac1t\sum_{i=1}^t \theta^i`,
      updated as :math:`\hat\theta^t = \hat\theta^{t-1} + (\theta^t - \hat\theta^{t-1})/t`;
    * ``kind="ema"`` (lecture 003, for non-convex problems):
      :math:`\hat\theta^t = \alpha\hat\theta^{t-1} + (1-\alpha)\theta^t`, started at
      :math:`\hat\theta^1 = \theta^1`.

    Before the first update the average is the initial parameters. Read it with
    :func:`averaged_params`. It must be last in the chain, because it needs the final
    update, and it needs ``params`` in ``update`` (``nnx.Optimizer`` passes them).

    Args:
      kind: ``"uniform"`` or ``"ema"``. Static; keyword-only, like ``decay``.
      decay: :math:`\alpha \in [0, 1)` for ``kind="ema"`` (required there; unused for
        ``"uniform"``). Checked when concrete; traced values are not.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, optax, jaxopt_lab as jol
      >>> tx = optax.chain(jol.sgd(0.1), jol.polyak_averaging(kind="uniform"))
      >>> params = jnp.array([1.0]); state = tx.init(params)
      >>> for _ in range(2):
      ...     u, state = tx.update(2 * params, state, params)
      ...     params = optax.apply_updates(params, u)
      >>> jol.averaged_params(state)  # (0.8 + 0.64) / 2
      Array([0.72], dtype=float32)

    References:
      Lecture 003 (Favaro), "Polyak Averaging"; lecture 001, iterate averaging;
      Polyak & Juditsky, 1992.
    """
    check_choice("kind", kind, ("uniform", "ema"))
    if kind == "ema":
        if decay is None:
            raise ValueError(
                '`decay` is required for polyak_averaging(kind="ema"): pass e.g. decay=0.99.'
            )
        check_unit_interval("decay", decay, "0.99")
    elif decay is not None:
        raise ValueError(
            '`decay` is only used with kind="ema"; the uniform average weighs every '
            'iterate equally. Drop `decay` or pass kind="ema".'
        )

    def init_fn(params):
        check_float_params(params)
        return PolyakAveragingState(
            count=jnp.zeros([], jnp.int32), averaged=jax.tree.map(jnp.array, params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "polyak_averaging needs `params` in update(updates, state, params): "
                "call tx.update(grads, state, params)."
            )
        check_update_args(updates, state.averaged, params)
        count = safe_increment(state.count)

        def average(avg, p, u):
            # the weight in the average's own dtype: 1/t in float32 would round a
            # float64 average
            if kind == "uniform":
                weight = 1 / count.astype(avg.dtype)
            else:
                weight = jnp.where(count == 1, 1.0, 1.0 - cast_like(decay, avg))
            new = p + u.astype(p.dtype)
            return avg + cast_like(weight, avg) * (new - avg)

        averaged = jax.tree.map(average, state.averaged, params, updates)
        return updates, PolyakAveragingState(count=count, averaged=averaged)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(opt_state: Any) -> optax.Params:
    """Returns the Polyak average held in an optimizer state.

    Args:
      opt_state: the state of a chain that ends in :func:`polyak_averaging`, or a
        ``flax.nnx.Optimizer`` whose transformation does (its average is returned as an
        ``nnx.State`` of arrays, ready for ``nnx.update(model, ...)``).

    Returns:
      The averaged parameters, with the structure of the parameters.

    Raises:
      ValueError: when the state holds no :func:`polyak_averaging`.
    """
    from flax import nnx

    if isinstance(opt_state, nnx.Optimizer):
        opt_state = opt_state.opt_state
    found = optax.tree.get_all_with_path(opt_state, "PolyakAveragingState")
    if len(found) != 1:
        raise ValueError(
            "`opt_state` must hold exactly one polyak_averaging state, found "
            f"{len(found)}. Build the optimizer as optax.chain(..., "
            "jol.polyak_averaging(...)) and pass its state."
        )
    averaged = found[0][1].averaged
    return jax.tree.map(
        lambda x: x.get_value() if isinstance(x, nnx.Variable) else x,
        averaged,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )
