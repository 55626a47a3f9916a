r"""Newton's method, and saddle-free Newton, as optax transformations.

Newton's method (lecture 004) rescales the gradient by the inverse Hessian,
:math:`x' = x - H(x)^{-1} \nabla f(x)`, which undoes ill-conditioning: on a quadratic it lands
on the critical point in one step. That critical point can be a saddle: "Newton methods jump
at critical points and might get stuck at saddle points" (lecture 003). Saddle-free Newton
(Dauphin et al., 2014) uses :math:`|H| = Q|\Lambda|Q^\top` instead, so directions of negative
curvature are descended rather than climbed and saddles repel.

The Hessian comes from the loss, passed to ``update`` as the extra argument ``value_fn``
(as for optax's line searches): ``tx.update(grads, state, params, value_fn=loss)``.
The named optimizer :func:`jaxopt_lab.newton` (in :mod:`jaxopt_lab.optimizers`) chains
:func:`scale_by_newton` with a learning rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import check_bool, check_choice, check_count, check_nonnegative
from jaxopt_lab.curvature._lanczos import fixed_depth
from jaxopt_lab.transforms._common import check_float_params, check_update_args

_METHODS = ("auto", "dense", "cg")


def _abs_inverse_lanczos(hvp, g: jax.Array, delta: jax.Array, depth: int) -> jax.Array:
    r""":math:`(|H| + \delta I)^{-1} g \approx \|g\| Q f(T) e_1` from ``depth`` Lanczos steps.

    The Lanczos loop of :mod:`jaxopt_lab.curvature` (full reorthogonalisation; on a
    breakdown, where the Krylov space is invariant, :math:`T` splits into blocks and the
    result is exact) rather than matfree's ``funm_lanczos_sym``, which returns NaN on a
    breakdown (e.g. :math:`H = 2I`).
    """
    norm = jnp.linalg.norm(g)
    safe_g = jnp.where(norm > 0, g, jnp.ones_like(g))
    theta, s, res = fixed_depth(hvp, safe_g, depth, jax.random.key(0))
    coeffs = s @ (s[0] / (jnp.abs(theta) + delta))  # f(T) e_1
    step = jnp.linalg.norm(safe_g) * (coeffs @ res.basis)
    return jnp.where(norm > 0, step, jnp.zeros_like(g))


def scale_by_newton(
    damping: jax.typing.ArrayLike = 0.0,
    *,
    saddle_free: bool = False,
    method: str = "auto",
    max_dense: int = 1000,
    cg_tol: float = 1e-5,
    cg_maxiter: int = 100,
    krylov_depth: int = 50,
) -> optax.GradientTransformationExtraArgs:
    r"""Replaces the gradient :math:`g` by :math:`(H + \delta I)^{-1} g` (or with :math:`|H|`).

    * dense (D <= ``max_dense`` with ``method="auto"``): :math:`H` by ``jax.hessian`` of
      ``value_fn``, then a linear solve, or with ``saddle_free`` an ``eigh``
      :math:`H = Q\Lambda Q^\top` and :math:`Q (|\Lambda| + \delta)^{-1} Q^\top g`.
    * ``"cg"``: conjugate gradients on Hessian-vector products (forward-over-reverse),
      at most ``cg_maxiter`` products; CG assumes :math:`H + \delta I` positive definite, so
      use ``damping`` away from minima. With ``saddle_free``,
      :math:`(|H| + \delta I)^{-1} g` by a ``krylov_depth``-step Lanczos matrix-function
      product, :math:`\|g\| Q f(T) e_1` (exact when the Krylov space becomes invariant).

    A singular system (e.g. plain Newton with ``damping=0`` where H is singular) gives
    non-finite updates, which a training loop records as divergence; nothing is raised.

    Args:
      damping: :math:`\delta \ge 0`, added to the Hessian (Levenberg-style). May be traced.
      saddle_free: use :math:`|H|` (absolute eigenvalues). Static.
      method: ``"auto"``, ``"dense"`` or ``"cg"``. Static.
      max_dense: largest D that ``"auto"`` solves densely.
      cg_tol: relative residual tolerance of CG.
      cg_maxiter: CG iterations at most.
      krylov_depth: Lanczos steps for saddle-free Newton on the matrix-free path.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params`` and
      ``value_fn`` (``params -> scalar loss``).
    """
    check_nonnegative("damping", damping, "1e-3")
    check_bool("saddle_free", saddle_free)
    check_choice("method", method, _METHODS)
    check_nonnegative(
        "cg_tol", cg_tol, "1e-5", "Pass e.g. 1e-5 (0 runs all `cg_maxiter` iterations)."
    )
    max_dense = check_count(max_dense, "max_dense", fix="E.g. max_dense=1000.")
    cg_maxiter = check_count(cg_maxiter, "cg_maxiter", fix="E.g. cg_maxiter=100.")
    krylov_depth = check_count(krylov_depth, "krylov_depth", fix="E.g. krylov_depth=50.")

    def init_fn(params):
        check_float_params(params)
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, value_fn=None, **extra_args):
        del extra_args
        if params is None or value_fn is None:
            raise ValueError(
                "Newton needs the loss: call `update(grads, state, params, value_fn=loss_fn)` "
                "with `params` and `value_fn` (params -> scalar loss)."
            )
        check_update_args(updates, params=params)
        g, unravel = ravel_pytree(updates)
        x, unravel_params = ravel_pytree(params)
        g = g.astype(x.dtype)
        delta = jnp.asarray(damping, x.dtype)
        f = lambda z: value_fn(unravel_params(z))
        dense = method == "dense" or (method == "auto" and x.size <= max_dense)
        if dense:
            h = jax.hessian(f)(x)
            h = 0.5 * (h + h.T)
            if saddle_free:
                lam, q = jnp.linalg.eigh(h)
                step = q @ ((q.T @ g) / (jnp.abs(lam) + delta))
            else:
                step = jnp.linalg.solve(h + delta * jnp.eye(x.size, dtype=x.dtype), g)
        else:
            hvp = lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1]
            if saddle_free:
                step = _abs_inverse_lanczos(hvp, g, delta, min(krylov_depth, x.size))
            else:
                step, _ = jax.scipy.sparse.linalg.cg(
                    lambda v: hvp(v) + delta * v, g, tol=cg_tol, maxiter=cg_maxiter
                )
        updates = jax.tree.map(
            lambda s, u: s.astype(u.dtype), unravel(step.astype(g.dtype)), updates
        )
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
