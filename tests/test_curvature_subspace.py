"""Where the gradient lives: its overlap with the top-k Hessian eigenspace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_problems import digits_like, mlp_loss, mlp_params
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jol
from jaxopt_lab import curvature

DATA = digits_like(32)


def test_overlap_equals_the_projection_on_the_dense_eigenvectors():
    params = mlp_params(hidden=3)
    flat, unravel = ravel_pytree(params)
    h = np.asarray(jax.hessian(lambda f: mlp_loss(unravel(f), DATA))(flat), np.float64)
    g = np.asarray(jax.grad(lambda f: mlp_loss(unravel(f), DATA))(flat), np.float64)
    _, vectors = np.linalg.eigh(h)
    top = vectors[:, -3:]
    want = np.sum((top.T @ g) ** 2) / np.sum(g**2)
    got = curvature.gradient_overlap(mlp_loss, params, DATA, k=3, tol=1e-6)
    assert float(got.gradient) == pytest.approx(want, rel=1e-3)
    assert bool(got.converged.all()) and np.isnan(got.update)
    # the update of Adam (after 2 steps): its own direction, projected the same way
    tx = jol.adam(0.01)
    state = tx.init(params)
    for _ in range(2):
        _, state = tx.update(jax.grad(mlp_loss)(params, DATA), state, params)
    update, _ = tx.update(jax.grad(mlp_loss)(params, DATA), state, params)
    u = np.asarray(ravel_pytree(update)[0], np.float64)
    got = curvature.gradient_overlap(
        mlp_loss, params, DATA, k=3, opt_state=state, optimizer=tx, tol=1e-6
    )
    assert float(got.update) == pytest.approx(np.sum((top.T @ u) ** 2) / np.sum(u**2), rel=1e-3)


def test_on_a_quadratic_and_as_a_callback():
    lam = jnp.array([10.0, 1.0, 1.0])
    f = lambda w: 0.5 * jnp.sum(lam * w**2)
    # g = (10, 1, 0) at (1, 1, 0): 100/101 of it along the top eigenvector
    o = curvature.gradient_overlap(f, jnp.array([1.0, 1.0, 0.0]), k=1)
    assert float(o.gradient) == pytest.approx(100 / 101, rel=1e-5)
    # in training: gradient descent on the quadratic, the gradient's share along e_1
    cb = curvature.subspace_callback(f, every=2, k=1)
    result = jol.train(
        lambda w, batch: f(w),
        jnp.array([1.0, 1.0, 0.0]),
        jol.sgd(0.01),
        jnp.zeros((4, 1)),  # unused: a full-batch loss
        steps=4,
        key=None,
        callbacks=[cb],
        progress=False,
    )
    w = np.array([1.0, 1.0, 0.0])
    for step in range(5):
        if step % 2 == 0:
            g = np.asarray(lam) * w
            assert result.history["gradient_in_top_k"][step] == pytest.approx(
                g[0] ** 2 / np.sum(g**2), rel=1e-4
            )
            # plain SGD: the update is -lr g, the same direction
            assert result.history["update_in_top_k"][step] == pytest.approx(
                result.history["gradient_in_top_k"][step], rel=1e-5
            )
        w = w - 0.01 * np.asarray(lam) * w


def test_overlap_refuses_half_of_the_optimizer():
    with pytest.raises(ValueError, match="go together"):
        curvature.gradient_overlap(mlp_loss, mlp_params(), DATA, optimizer=jol.sgd(0.1))
    with pytest.raises(ValueError, match="`k`"):
        curvature.subspace_callback(mlp_loss, DATA, every=1, k=0)
