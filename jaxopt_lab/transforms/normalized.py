"""Normalized gradients: per coordinate (sign) and global (unit norm)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_nonnegative
from jaxopt_lab.transforms._common import cast_like


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
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.sign, updates), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_global_norm(
    eps: jax.typing.ArrayLike = 1e-12,
) -> optax.GradientTransformationExtraArgs:
    r"""Global normalization :math:`u = g / (\lVert g \rVert_2 + \epsilon)` over all leaves.

    Every step then has length (about) the learning rate, whatever the gradient's size.

    Args:
      eps: :math:`\epsilon \ge 0`, keeps a zero gradient finite.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with empty state.

    References:
      Lecture 002 (Congeduti), "Normalizing gradients" (the global-norm variant).
    """
    check_nonnegative("eps", eps)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = optax.tree.norm(updates)
        updates = jax.tree.map(lambda g: g / cast_like(norm + eps, g), updates)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
