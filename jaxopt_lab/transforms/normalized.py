"""Normalized gradients: per coordinate (sign) and global (unit norm)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_nonnegative
from jaxopt_lab.transforms._common import (
    check_float_params,
    check_update_args,
    compute_dtype,
)


def scale_by_sign() -> optax.GradientTransformationExtraArgs:
    r"""Per-coordinate normalization :math:`\tilde\nabla_i = g_i / |g_i|` (0 where g_i = 0).

    Lecture 002, "Normalizing gradients": keep only the direction along each axis, so
    every coordinate moves the same distance, the learning rate, at each step.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with empty state.

    References:
      Lecture 002 (Congeduti), "Normalizing gradients"; Bernstein et al., signSGD, 2018.
    """

    def init_fn(params):
        check_float_params(params)
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, params=params)
        return jax.tree.map(jnp.sign, updates), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_global_norm(
    eps: jax.typing.ArrayLike = 1e-12,
) -> optax.GradientTransformationExtraArgs:
    r"""Global normalization :math:`u = g / (\lVert g \rVert_2 + \epsilon)` over all leaves.

    Every step then has length (about) the learning rate, whatever the gradient's size.
    The norm is computed in float32 for half-precision gradients (a float16 square
    overflows beyond 256).

    Args:
      eps: :math:`\epsilon \ge 0`, keeps a zero gradient finite.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with empty state.

    References:
      Lecture 002 (Congeduti), "Normalizing gradients" (the global-norm variant).
    """
    check_nonnegative("eps", eps, "1e-12")

    def init_fn(params):
        check_float_params(params)
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, params=params)
        # the squared norm in float32 at least: float16 squares overflow beyond 256
        updates = jax.tree.map(jnp.asarray, updates)
        leaves = jax.tree.leaves(updates)
        dtypes = [compute_dtype(g.dtype) for g in leaves]
        acc = np.result_type(*dtypes) if dtypes else np.dtype(np.float32)
        sq = sum((jnp.sum(jnp.square(g.astype(acc))) for g in leaves), jnp.zeros((), acc))
        norm = jnp.sqrt(sq)
        denom = norm + jnp.asarray(eps, acc)
        updates = jax.tree.map(lambda g: (g.astype(acc) / denom).astype(g.dtype), updates)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
