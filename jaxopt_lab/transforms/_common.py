"""Small pieces shared by the transformation families."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._types import ScalarOrSchedule
from jaxopt_lab._validation import check_learning_rate


def cast_like(value: jax.typing.ArrayLike, like: jax.Array) -> jax.Array:
    """``value`` as an array of ``like``'s dtype (keeps bf16 params bf16 under vmap)."""
    return jnp.asarray(value, dtype=like.dtype)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` that saturates instead of wrapping around."""
    return optax.safe_increment(count)


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate` when the rate is a schedule."""

    count: jax.Array  # int32 scalar: number of updates applied so far


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies updates by :math:`-\alpha` (or :math:`+\alpha` with ``flip_sign=False``).

    Unlike ``optax.scale_by_learning_rate`` the factor is cast to each leaf's dtype, so
    a traced float32 learning rate (``vmap`` over a grid) leaves bfloat16 parameters
    bfloat16. A schedule is evaluated at the update count, starting at 0.

    Args:
      learning_rate: a non-negative scalar, a traced array, or a schedule
        ``step -> value``. Concrete values are checked at construction; traced ones
        cannot be.
      flip_sign: multiply by ``-learning_rate`` (descent) when True.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    check_learning_rate("learning_rate", learning_rate)
    sign = -1.0 if flip_sign else 1.0

    if callable(learning_rate):

        def init_fn(params):
            del params
            return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

        def update_fn(updates, state, params=None, **extra_args):
            del params, extra_args
            step_size = sign * learning_rate(state.count)
            updates = jax.tree.map(lambda g: cast_like(step_size, g) * g, updates)
            return updates, ScaleByScheduleState(count=safe_increment(state.count))

    else:

        def init_fn(params):
            del params
            return optax.EmptyState()

        def update_fn(updates, state, params=None, **extra_args):
            del params, extra_args
            updates = jax.tree.map(lambda g: cast_like(sign * learning_rate, g) * g, updates)
            return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
