"""Matrix-free path on a small MLP: Lanczos, power iteration, trace, density vs eigh(dense)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_problems import digits_like, mlp_loss, mlp_params
from jax.flatten_util import ravel_pytree
from matfree import decomp

from jaxopt_lab import DivergedError, curvature


@functools.cache
def _mlp():
    params, data = mlp_params(hidden=16), digits_like(128)  # D = 1210
    dense = np.asarray(curvature.dense_hessian(mlp_loss, params, data))
    return params, data, dense, np.linalg.eigvalsh(dense)


@functools.cache
def _extremes():
    params, data, _, _ = _mlp()
    top = curvature.eigenvalues(mlp_loss, params, data, k=5, which="largest")
    bottom = curvature.eigenvalues(mlp_loss, params, data, k=3, which="smallest")
    return top, bottom


def test_mlp_top5_and_bottom3_match_eigh():
    _, _, _, exact = _mlp()
    top, bottom = _extremes()
    assert bool(top.converged.all()) and bool(bottom.converged.all())
    np.testing.assert_allclose(top.values, exact[::-1][:5], rtol=1e-3)
    np.testing.assert_allclose(bottom.values, exact[:3], rtol=1e-3)
    assert exact[0] < 0 < exact[-1]  # an indefinite Hessian: bottom and top both matter
    assert int(top.num_matvecs) < 100 and int(bottom.num_matvecs) < 100


def test_eigenvectors_are_pytrees_satisfying_the_eigen_equation():
    params, _, dense, _ = _mlp()
    for eig in _extremes():
        assert jax.tree.structure(eig.vectors) == jax.tree.structure(params)
        assert eig.vectors["w1"].shape == (len(eig.values), *params["w1"].shape)
        vecs = np.asarray(jax.vmap(lambda v: ravel_pytree(v)[0])(eig.vectors))
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(vecs @ vecs.T, np.eye(len(vecs)), atol=1e-4)
        true_residuals = np.linalg.norm(vecs @ dense - eig.values[:, None] * vecs, axis=1)
        assert np.all(true_residuals < 1e-3 * float(np.max(np.abs(eig.values))))
        np.testing.assert_allclose(eig.residuals, true_residuals, atol=1e-4)


def test_minibatched_operator_equals_full_batch():
    params, data, dense, _ = _mlp()
    v = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype)).reshape(p.shape), params)
    full = ravel_pytree(curvature.hvp_operator(mlp_loss, params, data).matvec(v))[0]
    np.testing.assert_allclose(full, dense @ ravel_pytree(v)[0], rtol=1e-4, atol=1e-5)
    op = curvature.hvp_operator(mlp_loss, params, data, batch_size=50)  # 50 + 50 + 28
    np.testing.assert_allclose(ravel_pytree(op(v))[0], full, rtol=1e-4, atol=1e-6)
    loss, grad = op.loss_and_grad()
    np.testing.assert_allclose(loss, mlp_loss(params, data), rtol=1e-6)
    np.testing.assert_allclose(
        ravel_pytree(grad)[0], ravel_pytree(jax.grad(mlp_loss)(params, data))[0], atol=1e-6
    )


def test_tridiagonal_matches_matfree():
    lam = jnp.linspace(0.5, 3.0, 40) ** 2
    v0 = jnp.cos(jnp.arange(40.0))
    ours = curvature._lanczos.lanczos(
        lambda v: lam * v,
        v0,
        k=1,
        which="largest",
        tol=0.0,
        max_steps=12,
        min_steps=12,
        check_every=12,
        key=jax.random.key(0),
    )
    _, t, *_ = decomp.tridiag_sym(12)(lambda v: lam * v, v0)
    np.testing.assert_allclose(ours.alpha, jnp.diag(t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.abs(ours.beta[:-1]), jnp.abs(jnp.diag(t, 1)), rtol=1e-4)


def test_invariant_subspace_breakdown_is_handled():
    eig = curvature.eigenvalues(lambda w: jnp.sum(w**2), jnp.zeros(12), k=3)  # H = 2 I
    np.testing.assert_allclose(eig.values, 2.0, rtol=1e-6)
    assert bool(eig.converged.all())
    lam = jnp.array([5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, -1.0])  # three distinct eigenvalues
    eig = curvature.eigenvalues(
        lambda w: 0.5 * jnp.sum(lam * w**2), jnp.zeros(8), k=2, which="both"
    )
    np.testing.assert_allclose(eig.values, [5.0, 5.0, 1.0, -1.0], atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(eig.values))) and bool(eig.converged.all())


def test_budget_exhausted_is_a_flag_not_an_error_and_runs_under_jit():
    lam = jnp.linspace(1.0, 2.0, 300)
    f = lambda w: 0.5 * jnp.sum(lam * w**2)

    @jax.jit
    def top(w):
        return curvature.eigenvalues(f, w, k=3, tol=1e-7, max_matvecs=8)

    eig = top(jnp.zeros(300))
    assert not bool(eig.converged.any()) and int(eig.num_matvecs) == 8
    assert bool(jnp.all(eig.residuals > 0))


def test_throw_raises_for_unconverged_eigenvalues_after_the_work():
    lam = jnp.linspace(1.0, 2.0, 300)
    f = lambda w: 0.5 * jnp.sum(lam * w**2)
    w = jnp.zeros(300)
    with pytest.raises(DivergedError, match=r"3 of 3 eigenvalue\(s\) did not meet `tol`"):
        curvature.eigenvalues(f, w, k=3, tol=1e-7, max_matvecs=8, throw=True)
    fine = curvature.eigenvalues(f, w, k=1, tol=1e-3, max_matvecs=300, throw=True)
    assert bool(fine.converged.all())
    with pytest.raises(ValueError, match=r"`throw=True`.*concrete"):
        jax.jit(lambda w: curvature.eigenvalues(f, w, max_matvecs=8, throw=True).values)(w)
    report = curvature.analyze(f, w, method="lanczos", k=1, tol=1e-4)
    assert report.converged
    big = jnp.linspace(1.0, 2.0, 1000)  # clustered values: not within the default budget
    g = lambda w: 0.5 * jnp.sum(big * w**2)
    with pytest.raises(DivergedError, match="`eigenvalues`"):
        curvature.analyze(g, jnp.zeros(1000), method="lanczos", k=2, tol=1e-9, throw=True)


def test_power_iteration_like_pyhessian():
    params, data, _, exact = _mlp()
    eig = curvature.power_iteration(mlp_loss, params, data, k=2, tol=1e-4, max_iters=200)
    np.testing.assert_allclose(eig.values[0], exact[-1], rtol=1e-2)
    assert int(eig.num_matvecs) > 2 and eig.residuals.shape == (2,)
    v = jax.vmap(lambda t: ravel_pytree(t)[0])(eig.vectors)
    assert abs(float(v[0] @ v[1])) < 1e-3  # deflated: the second is orthogonal to the first


def test_trace_within_three_standard_errors():
    params, data, dense, _ = _mlp()
    est, se = curvature.trace(
        mlp_loss, params, data, num_probes=60, probe_batch=20, batch_size=64, key=jax.random.key(1)
    )
    exact = float(np.trace(dense))
    assert abs(float(est) - exact) < 3 * float(se)
    assert 0 < float(se) < abs(exact)


def test_density_weights_and_first_moment():
    params, data, dense, _ = _mlp()
    key = jax.random.key(2)
    dim = dense.shape[0]
    sd = curvature.density(mlp_loss, params, data, num_probes=6, num_nodes=30, key=key)
    assert sd.nodes.shape == sd.weights.shape == (6, 30)
    np.testing.assert_allclose(float(jnp.sum(sd.weights)), 1.0, rtol=1e-5)
    first = float(jnp.sum(sd.weights * sd.nodes))
    hutchinson = curvature.trace(mlp_loss, params, data, num_probes=6, key=key)
    np.testing.assert_allclose(first, float(hutchinson.estimate) / dim, rtol=1e-4)  # same probes
    assert abs(first - np.trace(dense) / dim) < 3 * float(hutchinson.standard_error) / dim
    grid = jnp.linspace(float(sd.nodes.min()) - 1.0, float(sd.nodes.max()) + 1.0, 4001)
    smooth = sd.smooth(grid, sigma=0.05)
    np.testing.assert_allclose(float(jnp.sum(smooth) * (grid[1] - grid[0])), 1.0, rtol=1e-3)


def test_both_ends_through_an_operator_without_recompiling():
    params, data, _, exact = _mlp()
    op = curvature.hvp_operator(mlp_loss, params, data, batch_size=50)
    eig = curvature.eigenvalues(op, k=1, which="both")
    np.testing.assert_allclose(eig.values, [exact[-1], exact[0]], rtol=1e-3)
    compiled = curvature._eigen._eigenvalues_jit._cache_size()
    moved = op.with_params(jax.tree.map(lambda p: 0.9 * p, params))
    curvature.eigenvalues(moved, k=1, which="both")
    assert curvature._eigen._eigenvalues_jit._cache_size() == compiled
