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

from jaxopt_lab.curvature._budget import DENSE_MAX_BYTES as DENSE_MAX_BYTES
from jaxopt_lab.curvature._budget import check_dense_budget
from jaxopt_lab.curvature._operator import check_problem, functional_loss

_BLOCK = 64  # Hessian columns computed at once: the work space is this many HVPs


def dense_hessian(
    loss_fn: Callable[..., jax.Array], params: Any, *args: Any, max_bytes: int | None = None
) -> jax.Array:
    r"""The Hessian :math:`H_{ij} = \partial^2 L / \partial\theta_i \partial\theta_j` as a matrix.

    Parameters are flattened with ``ravel_pytree`` (leaf order of ``jax.tree.leaves``). The
    matrix is built column by column from Hessian-vector products (forward-over-reverse,
    what ``jax.hessian`` computes), 64 columns at a time, and symmetrised,
    :math:`(H + H^\top)/2`, so ``jnp.linalg.eigh`` sees an exactly symmetric matrix
    (lecture 004: a real symmetric matrix has real eigenvalues and orthonormal eigenvectors).

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``; for a Flax NNX model,
        ``loss_fn(model, *args)``.
      params: a pytree of float32 or float64 arrays, or an ``nnx.Module`` (its
        ``nnx.Param`` state, in inference mode).
      *args: passed to ``loss_fn`` unchanged (e.g. a batch).
      max_bytes: the most memory the computation may use at its peak (default
        :data:`DENSE_MAX_BYTES`, 1 GiB): the compiled program's own account (XLA's
        memory analysis: the matrix, its symmetrised copy, the work space of 64
        Hessian-vector products, the arguments) is checked before it runs, so the
        peak is about twice the matrix (float32: :math:`D \le 11585` in 1 GiB).

    Returns:
      A ``(D, D)`` array in the parameters' dtype.

    Raises:
      ValueError: when the peak exceeds ``max_bytes``; the message gives the size needed
        and points to the matrix-free path.
      TypeError: for a loss that is not a real scalar, or parameters that are not float32
        or float64, naming ``loss_fn`` or ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda p: p["x"] ** 2 - p["y"] ** 2
      >>> jol.curvature.dense_hessian(f, {"x": 0.0, "y": 0.0}).tolist()
      [[2.0, 0.0], [0.0, -2.0]]
    """
    loss, pure, extra = functional_loss(loss_fn, params, splat=True)
    check_problem(loss, pure, extra, args)
    leaves = jax.tree.leaves(pure)
    size = int(sum(np.size(x) for x in leaves))
    dtype = jnp.result_type(*leaves)
    check_dense_budget(size, dtype, max_bytes)  # the matrix alone: before compiling
    compiled = _dense_jit.lower(loss, pure, extra, args, min(size, _BLOCK)).compile()
    check_dense_budget(size, dtype, max_bytes, peak=peak_bytes(compiled))
    return compiled(pure, extra, args)


def peak_bytes(compiled: Any) -> int:
    """The memory a compiled program uses at its peak, by XLA's account (0 if unknown)."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return 0
    if stats is None:
        return 0
    return int(
        stats.temp_size_in_bytes
        + stats.output_size_in_bytes
        + stats.argument_size_in_bytes
        - stats.alias_size_in_bytes
    )


@functools.partial(jax.jit, static_argnums=(0, 4))
def _dense_jit(loss, pure, extra, args, block):
    flat, unravel = ravel_pytree(pure)
    grad = jax.grad(lambda x: loss(unravel(x), extra, args))

    def column(i):
        return jax.jvp(grad, (flat,), (jax.nn.one_hot(i, flat.size, dtype=flat.dtype),))[1]

    h = jax.lax.map(column, jnp.arange(flat.size), batch_size=block)
    return 0.5 * (h + h.T)
