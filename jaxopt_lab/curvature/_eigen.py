"""Extreme eigenvalues of a Hessian, matrix-free: Lanczos, and power iteration for comparison."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._errors import DivergedError
from jaxopt_lab._types import Params
from jaxopt_lab._validation import check_choice, check_count, check_key, check_tolerance
from jaxopt_lab.curvature._lanczos import WHICH, check_k, default_max_matvecs, lanczos
from jaxopt_lab.curvature._operator import HessianOperator, as_operator


class Eigen(NamedTuple):
    """Eigenvalue estimates with the evidence for them.

    ``vectors`` is a pytree shaped like the parameters with a leading axis of length
    ``len(values)``: ``jax.tree.map(lambda x: x[i], vectors)`` is the i-th unit eigenvector.
    """

    values: jax.Array  # (n,) eigenvalue estimates (Ritz values), order set by `which`
    vectors: Params  # pytree like params, leading axis n: unit eigenvector estimates
    residuals: jax.Array  # (n,) ||H u - lambda u||, an upper bound on each value's error
    converged: jax.Array  # (n,) bool: residual <= tol * max |lambda| (never an exception)
    num_matvecs: jax.Array  # int32 scalar: Hessian-vector products used


@functools.partial(jax.jit, static_argnames=("k", "which", "max_steps", "min_steps", "check_every"))
def _eigenvalues_jit(op, v0, key, tol, *, k, which, max_steps, min_steps, check_every):
    matvec_flat, flat, unravel = op.flat()
    start = ravel_pytree(v0)[0].astype(flat.dtype)
    res = lanczos(
        matvec_flat,
        start,
        k=k,
        which=which,
        tol=tol,
        max_steps=max_steps,
        min_steps=min_steps,
        check_every=check_every,
        key=key,
    )
    return Eigen(
        values=res.values,
        vectors=jax.vmap(unravel)(res.vectors),
        residuals=res.residuals,
        converged=res.converged,
        num_matvecs=res.num_matvecs,
    )


def eigenvalues(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-4,
    batch_size: int | None = None,
    max_matvecs: int | None = None,
    check_every: int = 2,
    v0: Params | None = None,
    key: jax.Array | None = None,
    throw: bool = False,
) -> Eigen:
    r"""Extreme eigenvalues and eigenvectors of the Hessian by Lanczos (full reorthogonalisation).

    Grows the Krylov space one Hessian-vector product at a time; every ``check_every``
    products it diagonalises the tridiagonal :math:`T_j = Q_j^\top H Q_j` and stops once every
    wanted Ritz pair has residual :math:`|\beta_j s_j| \le \mathrm{tol} \cdot \max|\theta|`
    (a relative bound: each eigenvalue estimate is then within ``tol * |lambda_max|`` of a
    true eigenvalue, usually far closer), or when ``max_matvecs`` products are spent. Not
    converging is reported in ``converged``, never raised, so this runs inside ``jit``,
    ``vmap`` and training loops. Lectures 000 and 004: :math:`H = Q\Lambda Q^\top`, the
    eigenvalues are the curvatures along the eigenvectors.

    Args:
      loss_fn_or_op: ``loss_fn(params, batch)`` (or ``loss_fn(params)`` without data), or a
        :class:`HessianOperator` from :func:`hvp_operator` (then omit ``params``/``data``).
      params: a pytree or an ``nnx.Module``.
      data: a pytree of arrays with a leading example axis, or None.
      k: how many eigenvalues at each wanted end.
      which: ``"largest"`` (values descending), ``"smallest"`` (ascending), or ``"both"``
        (``2k`` values, descending: the k largest then the k smallest).
      tol: relative residual tolerance, > 0.
      batch_size: examples per Hessian-vector product batch (see :func:`hvp_operator`).
      max_matvecs: the budget of products (default ``min(D, 20 n + 40)`` for ``n`` wanted
        values). Memory: ``(max_matvecs + 1) * D`` numbers for the basis.
      check_every: products between convergence checks (each costs one small ``eigh``).
      v0: a start vector (pytree like params), e.g. a previous top eigenvector (warm start).
      key: PRNG key for the random start vector (default ``jax.random.key(0)``).
      throw: raise :class:`jaxopt_lab.DivergedError` when an eigenvalue did not
        converge (after the computation; not inside ``jit``, where values are traced).

    Returns:
      :class:`Eigen` ``(values, vectors, residuals, converged, num_matvecs)``.

    Raises:
      DivergedError: with ``throw=True``, naming the unconverged eigenvalues.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda w: 0.5 * jnp.sum(jnp.arange(1.0, 11.0) * w**2)  # H = diag(1..10)
      >>> eig = jol.curvature.eigenvalues(f, jnp.zeros(10), k=2, which="both")
      >>> eig.values.round(4).tolist(), bool(eig.converged.all())
      ([10.0, 9.0, 2.0, 1.0], True)
    """
    check_choice("which", which, WHICH)
    check_tolerance("tol", tol)
    check_every = check_count(check_every, "check_every", fix="E.g. check_every=5.")
    k = check_count(k, "k", fix="E.g. k=1 for the extreme eigenvalue.")
    if max_matvecs is not None:
        max_matvecs = check_count(max_matvecs, "max_matvecs", fix="E.g. max_matvecs=100.")
    op = as_operator(loss_fn_or_op, params, data, batch_size)
    dim = op.size
    nwanted = check_k(k, which, dim)
    if max_matvecs is None:
        max_matvecs = default_max_matvecs(dim, nwanted)
    if max_matvecs < nwanted:
        raise ValueError(
            f"`max_matvecs` must be >= the {nwanted} eigenvalues asked for, got "
            f"{max_matvecs!r}. Pass e.g. {default_max_matvecs(dim, nwanted)}."
        )
    max_steps = min(max_matvecs, dim)
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    start_key, key = jax.random.split(key)
    if v0 is not None:
        _check_like_params(v0, op.params)
    if v0 is None:  # made here, so that a start vector given or not is the same program
        flat, unravel = ravel_pytree(op.params)
        v0 = unravel(jax.random.normal(start_key, flat.shape, flat.dtype))
    eig = _eigenvalues_jit(
        op,
        v0,
        key,
        jnp.asarray(tol, op.dtype),
        k=k,
        which=which,
        max_steps=max_steps,
        min_steps=min(max_steps, nwanted + 2),
        check_every=check_every,
    )
    if throw:
        raise_unconverged(eig, tol, "eigenvalues")
    return eig


def _check_like_params(v0: Any, params: Any) -> None:
    """``v0`` must be a pytree of the parameters' structure and leaf shapes."""
    want = jax.tree.structure(params)
    if jax.tree.structure(v0) != want or any(
        np.shape(a) != np.shape(b)
        for a, b in zip(jax.tree.leaves(v0), jax.tree.leaves(params), strict=True)
    ):
        shapes = [np.shape(x) for x in jax.tree.leaves(params)]
        got = [np.shape(x) for x in jax.tree.leaves(v0)]
        raise ValueError(
            f"`v0` must be structured like the parameters ({want}, leaf shapes {shapes}), got "
            f"{jax.tree.structure(v0)} with leaf shapes {got}; e.g. a previous eigenvector."
        )


def raise_unconverged(eig: Eigen, tol: float, what: str) -> None:
    """Raises :class:`DivergedError` if any eigenvalue of ``eig`` did not converge."""
    if isinstance(eig.converged, jax.core.Tracer):
        raise ValueError(
            f"`throw=True` in `{what}` needs concrete results; inside `jit` or `vmap` read "
            "`Eigen.converged` instead."
        )
    converged = np.asarray(eig.converged, bool)
    if converged.all():
        return
    values, residuals = np.asarray(eig.values), np.asarray(eig.residuals)
    bad = [
        f"#{i} ({values[i]:.6g}, residual {residuals[i]:.3g})" for i in np.flatnonzero(~converged)
    ]
    raise DivergedError(
        f"`{what}` (throw=True): {len(bad)} of {converged.size} eigenvalue(s) did not meet "
        f"`tol` = {tol:g} within {int(eig.num_matvecs)} Hessian-vector products: "
        f"{', '.join(bad)}. Raise `max_matvecs` or `tol`, or pass throw=False to get them "
        "with `converged` flags."
    )


@functools.partial(jax.jit, static_argnames=("k", "max_iters"))
def _power_jit(op, key, tol, *, k, max_iters):
    matvec, flat, unravel = op.flat()

    def deflate(v, found):
        return v - (found @ v) @ found

    def one(found, key):
        v = jax.random.normal(key, flat.shape, flat.dtype)
        v = deflate(v, found)
        v = v / jnp.linalg.norm(v)

        def body(c):
            v, lam_prev, _, _, it, _ = c
            hv = matvec(v)
            lam = v @ hv
            resid = jnp.linalg.norm(hv - lam * v)
            new = deflate(hv, found)
            new = new / jnp.linalg.norm(new)
            done = jnp.abs(lam - lam_prev) / (jnp.abs(lam_prev) + 1e-6) < tol
            return new, lam, v, resid, it + 1, done

        def cond(c):
            return (~c[5]) & (c[4] < max_iters)

        zero = jnp.zeros((), flat.dtype)
        init = (v, zero, v, zero, jnp.zeros((), jnp.int32), jnp.zeros((), bool))
        _, lam, vec, resid, iters, done = jax.lax.while_loop(cond, body, init)
        return lam, vec, resid, done, iters

    found = jnp.zeros((k, flat.size), flat.dtype)
    values, residuals, converged, total = [], [], [], 0
    for i in range(k):
        lam, vec, resid, done, iters = one(found, jax.random.fold_in(key, i))
        found = found.at[i].set(vec)
        values.append(lam)
        residuals.append(resid)
        converged.append(done)
        total = total + iters
    return Eigen(
        values=jnp.stack(values),
        vectors=jax.vmap(unravel)(found),
        residuals=jnp.stack(residuals),
        converged=jnp.stack(converged),
        num_matvecs=jnp.asarray(total, jnp.int32),
    )


def power_iteration(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iters: int = 100,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> Eigen:
    r"""Top eigenvalues by power iteration with deflation, as PyHessian computes them.

    :math:`v \leftarrow H v / \|H v\|`, :math:`\lambda = v^\top H v`, each new vector kept
    orthogonal to those already found; stops when the relative change of :math:`\lambda`
    falls below ``tol`` or after ``max_iters`` products per eigenvalue (PyHessian's
    defaults: 1e-3, 100). It converges at rate :math:`|\lambda_2/\lambda_1|` per product and
    finds the largest-magnitude eigenvalue, so prefer :func:`eigenvalues`; this is here to
    compare with PyHessian. ``residuals`` are :math:`\|Hv - \lambda v\|` of the last iterate.

    Returns:
      :class:`Eigen` with values in the order found (not sorted).
    """
    check_tolerance("tol", tol)
    max_iters = check_count(max_iters, "max_iters", fix="E.g. max_iters=100.")
    k = check_count(k, "k", fix="E.g. k=1 for the top eigenvalue.")
    op = as_operator(loss_fn_or_op, params, data, batch_size)
    check_k(k, "largest", op.size)
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    return _power_jit(op, key, jnp.asarray(tol, op.dtype), k=k, max_iters=max_iters)
