r"""Where the gradient lives: its share in the top-k eigenspace of the Hessian.

Gur-Ari, Roberts & Dyer (2018) found that, early in training, the gradient of a
classifier with ``k`` classes lies almost entirely in the span of the top ``k``
eigenvectors of the Hessian, a subspace that itself changes slowly. For unit
eigenvectors :math:`u_1, \dots, u_k` the overlap

.. math::
   f_k(g) = \frac{\|P_k g\|^2}{\|g\|^2} = \frac{\sum_{i \le k} (u_i^\top g)^2}{g^\top g}
   \in [0, 1]

is the fraction of the gradient's squared norm in that subspace (1: all of it; a random
direction in :math:`D` dimensions gives about :math:`k/D`). The same for the optimizer's
update says whether the step, after momentum or preconditioning, still points there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import check_count, check_tolerance
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._operator import HessianOperator, as_operator
from jaxopt_lab.curvature._sharpness import loop_operator, unit_start


class SubspaceOverlap(NamedTuple):
    """What :func:`gradient_overlap` returns."""

    gradient: jax.Array  # scalar in [0, 1]: ||P_k g||^2 / ||g||^2
    update: jax.Array  # scalar in [0, 1] for the optimizer's update, NaN without one
    eigenvalues: jax.Array  # (k,) the top-k eigenvalues spanning the subspace
    converged: jax.Array  # (k,) bool


def _fraction(vectors: Any, x: Any) -> jax.Array:
    """``||P x||^2 / ||x||^2`` for the rows of ``vectors`` (orthonormal, flattened)."""
    flat = ravel_pytree(x)[0]
    basis = jax.vmap(lambda i: ravel_pytree(jax.tree.map(lambda v: v[i], vectors))[0])(
        jnp.arange(jax.tree.leaves(vectors)[0].shape[0])
    )
    coeffs = basis @ flat.astype(basis.dtype)
    total = jnp.sum(flat.astype(basis.dtype) ** 2)
    return jnp.where(total > 0, jnp.sum(coeffs**2) / total, jnp.nan)


def _overlap(op: HessianOperator, k: int, tol: float, key, v0, opt_state, optimizer):
    eig = eigenvalues(op, k=k, tol=tol, key=key, v0=v0)
    _, grad = op.loss_and_grad()
    out = {"gradient": _fraction(eig.vectors, grad), "update": jnp.asarray(jnp.nan)}
    if optimizer is not None and opt_state is not None:
        try:
            update, _ = optimizer.update(grad, opt_state, op.params)
        except TypeError:  # an optimizer that needs more (L-BFGS: value, value_fn): NaN
            return eig, out
        out["update"] = _fraction(eig.vectors, update)
    return eig, out


def gradient_overlap(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    k: int = 10,
    opt_state: Any = None,
    optimizer: Any = None,
    batch_size: int | None = None,
    tol: float = 1e-3,
    key: jax.Array | None = None,
) -> SubspaceOverlap:
    r"""The fraction of the gradient (and of the optimizer's update) in the span of the top
    ``k`` Hessian eigenvectors, :math:`\|P_k g\|^2 / \|g\|^2` (Gur-Ari et al. 2018).

    Args:
      loss_fn_or_op: ``loss_fn(params, batch)`` or a curvature operator (the GGN's
        eigenspace with :func:`ggn_operator`); the gradient is that of its loss over
        ``data``.
      params: a pytree or an ``nnx.Module``.
      data: a pytree of arrays with a leading example axis, or None.
      k: the subspace dimension (Gur-Ari et al. use the number of classes).
      opt_state, optimizer: with both, also the overlap of the update
        ``optimizer.update(g, opt_state, params)`` that the optimizer would take next.
      batch_size, tol, key: as :func:`eigenvalues`.

    Returns:
      :class:`SubspaceOverlap` ``(gradient, update, eigenvalues, converged)``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_lab as jol
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([10.0, 1.0, 1.0]) * w**2)
      >>> o = jol.curvature.gradient_overlap(f, jnp.array([1.0, 1.0, 0.0]), k=1)
      >>> round(float(o.gradient), 4)  # g = (10, 1, 0): 100 / 101 of it along e_1
      0.9901

    References:
      Gur-Ari, Roberts & Dyer (2018), "Gradient descent happens in a tiny subspace".
    """
    k = check_count(k, "k", fix="E.g. k=10, the number of classes.")
    check_tolerance("tol", tol, "1e-3")
    if (opt_state is None) != (optimizer is None):
        raise ValueError(
            "`opt_state` and `optimizer` go together (the update is "
            "optimizer.update(g, opt_state, params)); pass both or neither."
        )
    op = as_operator(loss_fn_or_op, params, data, batch_size)
    key = jax.random.key(0) if key is None else key
    eig, out = _overlap(op, k, tol, key, None, opt_state, optimizer)
    return SubspaceOverlap(out["gradient"], out["update"], eig.values, eig.converged)


class SubspaceState(NamedTuple):
    """State of :class:`SubspaceCallback`."""

    vector: Any  # pytree like params: a warm start for Lanczos (the last top eigenvector)
    key: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class SubspaceCallback:
    """A ``jol.train``/``jol.sweep`` callback recording :func:`gradient_overlap` every
    ``every`` steps as ``"gradient_in_top_k"`` and ``"update_in_top_k"``; build it with
    :func:`subspace_callback`."""

    loss_fn: Callable[..., jax.Array]
    data: Any
    every: int
    k: int
    batch_size: int | None
    tol: float
    seed: int

    def init(self, params: Any) -> SubspaceState:
        key = jax.random.key(self.seed)
        return SubspaceState(unit_start(params, key), key)

    def __call__(
        self,
        step: jax.Array,
        params: Any,
        state: SubspaceState,
        *,
        model: Any = None,
        opt_state: Any = None,
        optimizer: Any = None,
    ) -> tuple[SubspaceState, dict[str, jax.Array]]:
        op = loop_operator(self.loss_fn, params, model, self.data, self.batch_size)
        eig, out = _overlap(
            op,
            self.k,
            self.tol,
            jax.random.fold_in(state.key, step),
            state.vector,
            opt_state,
            optimizer,
        )
        vector = jax.tree.map(lambda x: x[0], eig.vectors)
        dtype = eig.values.dtype
        metrics = {
            "gradient_in_top_k": out["gradient"].astype(dtype),
            "update_in_top_k": out["update"].astype(dtype),
        }
        return state._replace(vector=vector), metrics


def subspace_callback(
    loss_fn: Callable[..., jax.Array],
    data: Any = None,
    *,
    every: int,
    k: int = 10,
    batch_size: int | None = None,
    tol: float = 1e-3,
    seed: int = 0,
) -> SubspaceCallback:
    r"""Records where the gradient lives during training: :func:`gradient_overlap` on a
    fixed data subset every ``every`` steps, as the history columns
    ``"gradient_in_top_k"`` and ``"update_in_top_k"`` (the step the run's optimizer takes
    from that gradient, read from the run's optimizer and its state).

    Args:
      loss_fn: ``loss_fn(params, batch)`` as given to ``jol.train``.
      data: a fixed subset (pytree with a leading example axis).
      every: evaluate at steps where ``step % every == 0``.
      k: the subspace dimension.
      batch_size, tol, seed: as :func:`sharpness_callback`.

    Returns:
      A :class:`SubspaceCallback`.
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}.")
    every = check_count(every, "every", fix="E.g. every=100.")
    k = check_count(k, "k", fix="E.g. k=10, the number of classes.")
    if batch_size is not None:
        batch_size = check_count(batch_size, "batch_size", fix="E.g. 256, or None for all at once.")
    check_tolerance("tol", tol, "1e-3")
    return SubspaceCallback(loss_fn, data, every, k, batch_size, tol, seed)
