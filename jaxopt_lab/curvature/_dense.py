"""The dense path: the full Hessian matrix of a small problem, and its eigendecomposition.

For :math:`D` parameters the Hessian is a symmetric :math:`D \\times D` matrix with the
spectral decomposition :math:`H = Q \\Lambda Q^\\top` (lectures 000 and 004): real
eigenvalues, orthonormal eigenvectors. Forming it costs :math:`D` Hessian-vector products
and :math:`D^2` numbers, so it is refused above a memory budget.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.curvature._operator import functional_loss

DENSE_MAX_BYTES = 1 << 30
"""Default budget of :func:`dense_hessian`: 1 GiB for the matrix (float32: D <= 16384)."""


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.3g} GiB"


def check_dense_budget(size: int, dtype: Any, max_bytes: int | None) -> None:
    """Raises ``ValueError`` when a ``size x size`` matrix of ``dtype`` exceeds ``max_bytes``."""
    budget = DENSE_MAX_BYTES if max_bytes is None else max_bytes
    needed = size * size * np.dtype(dtype).itemsize
    if needed > budget:
        raise ValueError(
            f"The dense Hessian of {size:,} parameters needs {_gib(needed)} "
            f"({size:,} x {size:,} x {np.dtype(dtype).itemsize} bytes), above `max_bytes` = "
            f"{_gib(budget)}. Use the matrix-free path instead "
            '(`jol.curvature.analyze(..., method="lanczos")`, or `eigenvalues`, `trace`, '
            "`density` on the loss or on a `jol.curvature.hvp_operator`), or raise "
            "`max_bytes` if the memory is really there."
        )


def dense_hessian(
    loss_fn: Callable[..., jax.Array], params: Any, *args: Any, max_bytes: int | None = None
) -> jax.Array:
    r"""The Hessian :math:`H_{ij} = \partial^2 L / \partial\theta_i \partial\theta_j` as a matrix.

    Parameters are flattened with ``ravel_pytree`` (leaf order of ``jax.tree.leaves``), the
    matrix is computed with ``jax.hessian`` (forward-over-reverse) and symmetrised,
    :math:`(H + H^\top)/2`, so ``jnp.linalg.eigh`` sees an exactly symmetric matrix
    (lecture 004: a real symmetric matrix has real eigenvalues and orthonormal eigenvectors).

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``; for a Flax NNX model,
        ``loss_fn(model, *args)``.
      params: a pytree of arrays, or an ``nnx.Module`` (its ``nnx.Param`` state, in inference
        mode).
      *args: passed to ``loss_fn`` unchanged (e.g. a batch).
      max_bytes: refuse when the matrix would need more (default
        :data:`DENSE_MAX_BYTES`, 1 GiB).

    Returns:
      A ``(D, D)`` array in the parameters' dtype.

    Raises:
      ValueError: when :math:`D^2` times the item size exceeds ``max_bytes``; the message
        gives the size needed and points to the matrix-free path.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda p: p["x"] ** 2 - p["y"] ** 2
      >>> jol.curvature.dense_hessian(f, {"x": 0.0, "y": 0.0}).tolist()
      [[2.0, 0.0], [0.0, -2.0]]
    """
    loss, pure, extra = functional_loss(loss_fn, params, splat=True)
    leaves = jax.tree.leaves(pure)
    size = int(sum(np.size(x) for x in leaves))
    check_dense_budget(size, jnp.result_type(*leaves), max_bytes)
    return _dense_jit(loss, pure, extra, args)


@functools.partial(jax.jit, static_argnums=0)
def _dense_jit(loss, pure, extra, args):
    flat, unravel = ravel_pytree(pure)
    h = jax.hessian(lambda x: loss(unravel(x), extra, args))(flat)
    return 0.5 * (h + h.T)
