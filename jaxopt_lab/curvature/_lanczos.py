"""Lanczos with full reorthogonalisation, grown until the wanted Ritz pairs converge.

After :math:`j` steps from a unit vector :math:`q_0`, Lanczos gives an orthonormal basis
:math:`Q_j` of the Krylov space :math:`\\{q_0, H q_0, \\dots, H^{j-1} q_0\\}` and a tridiagonal
:math:`T_j = Q_j^\\top H Q_j`, with :math:`H Q_j = Q_j T_j + \\beta_j q_j e_j^\\top`. An
eigenpair :math:`T_j s = \\theta s` gives the Ritz pair :math:`(\\theta, Q_j s)`, whose residual
is exactly :math:`\\|H Q_j s - \\theta Q_j s\\| = |\\beta_j\\, s_j|`, and
:math:`|\\theta - \\lambda| \\le |\\beta_j s_j|` for some eigenvalue :math:`\\lambda` of H.

Every new vector is orthogonalised twice against all previous ones (classical Gram-Schmidt
twice), so the basis stays orthonormal to working precision and no ghost copies of converged
eigenvalues appear. When :math:`\\beta_j` vanishes the Krylov space is invariant: its Ritz
values are exact, the coupling is set to 0 and the iteration continues from a random vector
orthogonal to the basis.

Why this loop and not ``matfree.decomp.tridiag_sym``: matfree's tridiagonalisation runs a
fixed number of steps chosen before it starts, so "grow until converged" would rerun it
from scratch at each new depth (about twice the products, and a recompilation per depth),
and it divides by :math:`\\beta_j` unguarded: ``tridiag_sym(3)`` on :math:`H = 2I` returns NaN.
The recurrence is the same; ``tests/test_curvature_lanczos.py`` checks that our tridiagonal
matrix equals matfree's on a problem without breakdown.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_count

WHICH = ("largest", "smallest", "both")


class LanczosResult(NamedTuple):
    """Wanted Ritz pairs of :func:`lanczos` on flat vectors."""

    values: jax.Array  # (n,) Ritz values, order set by `which`
    vectors: jax.Array  # (n, D) unit Ritz vectors, one per row
    residuals: jax.Array  # (n,) |beta_j s_j| = ||H u - theta u||
    converged: jax.Array  # (n,) bool: residual <= tol * max |theta|
    num_matvecs: jax.Array  # int32 scalar: Lanczos steps taken = products with H
    alpha: jax.Array  # (m,) diagonal of T (entries past num_matvecs are 0)
    beta: jax.Array  # (m,) off-diagonal of T; beta[i] couples vectors i and i + 1
    basis: jax.Array  # (m, D) the Lanczos vectors, one per row (rows past num_matvecs are 0)


class _State(NamedTuple):
    basis: jax.Array  # (m + 1, D): rows < steps are the basis, row `steps` the next vector
    alpha: jax.Array  # (m,) diagonal of T
    beta: jax.Array  # (m,) off-diagonal of T (0 after a breakdown)
    anorm: jax.Array  # scalar: running estimate of ||H|| (for the breakdown test)
    steps: jax.Array  # int32 scalar: vectors in the basis = products taken
    values: jax.Array  # (n,) wanted Ritz values at the last check
    vecs: jax.Array  # (n, m) their unit eigenvectors of T, one per row
    residuals: jax.Array  # (n,) their residuals |beta s_last|
    scale: jax.Array  # scalar: max |Ritz value|, the scale of the relative tolerance
    done: jax.Array  # bool scalar


def _orthogonalise(basis: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``w`` minus its projection on the rows of ``basis``, twice; and the first coefficients."""
    h = basis @ w
    w = w - h @ basis
    w = w - (basis @ w) @ basis
    return w, h


def _step(matvec, spare: jax.Array, max_steps: int, state: _State) -> _State:
    j = state.steps
    q = state.basis[j]
    w, h = _orthogonalise(state.basis, matvec(q))
    alpha = h[j]
    b = jnp.linalg.norm(w)
    prev = jnp.where(j > 0, state.beta[jnp.maximum(j - 1, 0)], 0.0)
    anorm = jnp.maximum(state.anorm, jnp.abs(alpha) + b + prev)
    eps = jnp.finfo(w.dtype).eps
    broke = b <= 100 * eps * anorm

    def restart(_):  # a fresh random direction: the spare random vector, shifted by j
        r, _ = _orthogonalise(state.basis, jnp.roll(spare, 7 * (j + 1)))  # rows > j are 0
        return r / jnp.maximum(jnp.linalg.norm(r), jnp.finfo(w.dtype).tiny)

    nxt = jax.lax.cond(broke & (j + 1 < max_steps), restart, lambda _: w / b, None)
    nxt = jnp.where(broke & (j + 1 >= max_steps), jnp.zeros_like(w), nxt)
    return state._replace(
        basis=state.basis.at[j + 1].set(nxt),
        alpha=state.alpha.at[j].set(alpha),
        beta=state.beta.at[j].set(jnp.where(broke, 0.0, b)),
        anorm=anorm,
        steps=j + 1,
    )


def _wanted(steps: jax.Array, k: int, which: str) -> jax.Array:
    """Indices into the ascending Ritz values of the wanted ones, in output order."""
    top = steps - 1 - jnp.arange(k, dtype=steps.dtype)  # descending
    bottom = jnp.arange(k, dtype=steps.dtype)  # ascending
    if which == "largest":
        return top
    if which == "smallest":
        return bottom
    return jnp.concatenate([top, bottom[::-1]])  # "both": descending overall


def tridiagonal(alpha: jax.Array, beta: jax.Array, steps: jax.Array):
    """Diagonal and off-diagonal of T's leading ``steps x steps`` block, padded to full size.

    The padding diagonal lies above T's Gershgorin bound, so the first ``steps`` ascending
    eigenvalues of the padded matrix are exactly those of the block.
    """
    idx = jnp.arange(alpha.shape[0], dtype=steps.dtype)  # int32 like steps (also under x64)
    active = idx < steps
    off = jnp.where(idx[:-1] < steps - 1, beta[:-1], 0.0)
    radius = jnp.abs(alpha) + jnp.pad(jnp.abs(off), (0, 1)) + jnp.pad(jnp.abs(off), (1, 0))
    sentinel = 1.0 + 2.0 * jnp.max(jnp.where(active, radius, 0.0))
    return jnp.where(active, alpha, sentinel), off


def fixed_depth(matvec, v0: jax.Array, depth: int, key: jax.Array):
    """Exactly ``depth`` Lanczos steps from ``v0`` (fewer on a breakdown) and the whole
    eigendecomposition of their tridiagonal T: ``(theta, s, result)``, ``theta`` ascending,
    ``s`` the eigenvectors of T in columns, ``result`` the :class:`LanczosResult` (its
    ``basis`` holds the Lanczos vectors). After a breakdown the padding of T adds
    eigenvalues whose vectors have no ``e_1`` component, so ``s[0]`` weights ignore them.
    The shared core of stochastic Lanczos quadrature and saddle-free Newton.
    """
    res = lanczos(
        matvec,
        v0,
        k=1,
        which="largest",
        tol=0.0,
        max_steps=depth,
        min_steps=depth,
        check_every=depth,
        key=key,
    )
    d, off = tridiagonal(res.alpha, res.beta, res.num_matvecs)
    theta, s = jnp.linalg.eigh(jnp.diag(d) + jnp.diag(off, 1) + jnp.diag(off, -1))
    return theta, s, res


def ritz(alpha: jax.Array, beta: jax.Array, steps: jax.Array, k: int, which: str):
    """The wanted Ritz values (output order), their unit eigenvectors of T, residuals, scale.

    Values by bisection (``eigh_tridiagonal``); vectors by three steps of inverse iteration
    each, orthogonalised against the ones before (so the repeated eigenvalues that appear
    after a breakdown get orthogonal vectors). A dense ``eigh`` of T is avoided on purpose:
    LAPACK's divide and conquer took 0.1-0.2 s on 140 x 140 Lanczos matrices whose
    converged eigenvectors have underflowing components, about 100 times its usual cost.
    """
    d, off = tridiagonal(alpha, beta, steps)
    theta = jax.scipy.linalg.eigh_tridiagonal(d, off, eigvals_only=True)  # ascending
    values = theta[_wanted(steps, k, which)]
    dl, du = jnp.pad(off, (1, 0)), jnp.pad(off, (0, 1))
    start = 1.0 + 0.5 * jnp.cos(jnp.arange(d.shape[0], dtype=d.dtype))
    last = jnp.maximum(steps - 1, 0)
    scale = jnp.maximum(jnp.abs(theta[0]), jnp.abs(theta[last]))
    # Shift off the eigenvalue by a rounding error of T, so that T - shift is never exactly
    # singular (e.g. T = 0 when H = 0).
    nudge = 4 * jnp.finfo(d.dtype).eps * jnp.where(scale > 0, scale, 1.0)

    def inverse_iteration(i, vecs):
        x = start
        for _ in range(3):
            shifted = d - (values[i] + nudge)
            x = jax.lax.linalg.tridiagonal_solve(dl, shifted, du, x[:, None], perturb_singular=True)
            x = x[:, 0] - (vecs @ x[:, 0]) @ vecs  # rows >= i are still zero
            x = x / jnp.linalg.norm(x)
        return vecs.at[i].set(x)

    vecs = jnp.zeros((values.shape[0], d.shape[0]), d.dtype)
    vecs = jax.lax.fori_loop(0, values.shape[0], inverse_iteration, vecs)
    residuals = jnp.abs(beta[last] * vecs[:, last])
    return values, vecs, residuals, scale


def lanczos(
    matvec,
    v0: jax.Array,
    *,
    k: int,
    which: str,
    tol: jax.typing.ArrayLike,
    max_steps: int,
    min_steps: int,
    check_every: int,
    key: jax.Array,
) -> LanczosResult:
    """Runs Lanczos on flat vectors until the wanted Ritz pairs converge or ``max_steps``.

    ``v0`` must be non-zero; ``key`` seeds the random direction used after a breakdown.
    """
    dim = v0.shape[0]
    spare = jax.random.normal(key, v0.shape, v0.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    m = max_steps
    n = 2 * k if which == "both" else k
    state = _State(
        basis=jnp.zeros((m + 1, dim), v0.dtype).at[0].set(v0),
        alpha=jnp.zeros((m,), v0.dtype),
        beta=jnp.zeros((m,), v0.dtype),
        anorm=jnp.zeros((), v0.dtype),
        steps=jnp.zeros((), jnp.int32),
        values=jnp.zeros((n,), v0.dtype),
        vecs=jnp.zeros((n, m), v0.dtype),
        residuals=jnp.zeros((n,), v0.dtype),
        scale=jnp.zeros((), v0.dtype),
        done=jnp.zeros((), bool),
    )

    def body(st):
        todo = jnp.minimum(check_every, m - st.steps)
        st = jax.lax.fori_loop(0, todo, lambda _, st: _step(matvec, spare, m, st), st)
        values, vecs, residuals, scale = ritz(st.alpha, st.beta, st.steps, k, which)
        ok = jnp.all(residuals <= tol * scale)
        done = (ok & (st.steps >= min_steps)) | (st.steps >= m)
        return st._replace(values=values, vecs=vecs, residuals=residuals, scale=scale, done=done)

    st = jax.lax.while_loop(lambda st: ~st.done, body, state)
    return LanczosResult(
        values=st.values,
        vectors=st.vecs @ st.basis[:-1],
        residuals=st.residuals,
        converged=st.residuals <= tol * st.scale,
        num_matvecs=st.steps,
        alpha=st.alpha,
        beta=st.beta,
        basis=st.basis[:-1],
    )


def default_max_matvecs(dim: int, nwanted: int) -> int:
    """Default Krylov budget: ``20 * nwanted + 40`` products, at most the dimension."""
    return int(min(dim, 20 * nwanted + 40))


def check_k(k: int, which: str, dim: int) -> int:
    """Validates ``k`` against ``which`` and the dimension; returns the number of wanted values."""
    k = check_count(k, "k", fix="E.g. k=1 for the extreme eigenvalue.")
    nwanted = 2 * k if which == "both" else k
    if nwanted > dim:
        raise ValueError(
            f"`k` = {k} with which={which!r} asks for {nwanted} eigenvalues of a {dim}-dimensional "
            f"Hessian. Pass k <= {dim // 2 if which == 'both' else dim}."
        )
    return nwanted
