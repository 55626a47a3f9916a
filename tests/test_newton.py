"""Newton and saddle-free Newton: one step on a quadratic, saddles, damping, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxopt_lab.optimizers import newton
from jaxopt_lab.transforms.newton import scale_by_newton

A = jnp.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 50.0]])
B = jnp.array([1.0, -2.0, 3.0])


def quadratic(p):
    w = jnp.concatenate([p["a"], p["b"][None]])
    return 0.5 * w @ A @ w - B @ w


def _step(tx, loss, params):
    updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
    return optax.apply_updates(params, updates)


def _jit_step(tx, loss, params):
    """``_step`` as one compiled program (eagerly, a Lanczos step compiles ~80 small ones)."""
    return jax.jit(lambda p: _step(tx, loss, p))(params)


@pytest.mark.parametrize("method", ["dense", "cg"])
def test_one_step_to_the_minimum_of_a_quadratic(method):
    params = {"a": jnp.array([5.0, -4.0]), "b": jnp.array(2.0)}
    new = jax.jit(lambda p: _step(newton(method=method), quadratic, p))(params)
    np.testing.assert_allclose(
        jnp.concatenate([new["a"], new["b"][None]]), jnp.linalg.solve(A, B), rtol=1e-5
    )


def test_saddle_free_moves_away_from_the_saddle_where_newton_jumps_onto_it():
    f = lambda p: p[0] ** 2 - p[1] ** 2
    start = jnp.array([0.5, 0.3])
    plain = _jit_step(newton(), f, start)
    np.testing.assert_allclose(plain, [0.0, 0.0], atol=1e-7)  # lands on the saddle
    for method in ("dense", "cg"):
        free = _jit_step(newton(saddle_free=True, method=method), f, start)
        np.testing.assert_allclose(free, [0.0, 0.6], atol=1e-5)  # |H| = 2 I: descends in y
        assert f(free) < f(start) < f(plain) + 1.0


def test_saddle_free_matrix_free_survives_a_lanczos_breakdown():
    # H = 2 I: the Krylov space is invariant after one step (matfree's funm gave NaN here)
    f = lambda w: jnp.sum(w**2)
    w = jnp.arange(1.0, 11.0)
    new = _jit_step(newton(saddle_free=True, method="cg", krylov_depth=5), f, w)
    np.testing.assert_allclose(new, jnp.zeros(10), atol=1e-5)
    # an indefinite diagonal H, full depth: the matrix-free step equals the dense one
    h = jnp.array([1.0, -2.0, 3.0, 0.5, -1.0, 4.0])
    g = lambda w: 0.5 * jnp.sum(h * w**2) + jnp.sum(w)
    w = jnp.full(6, 0.3)
    dense = _jit_step(newton(saddle_free=True, method="dense"), g, w)
    free = _jit_step(newton(saddle_free=True, method="cg", krylov_depth=6), g, w)
    np.testing.assert_allclose(free, dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense - w, -(h * w + 1) / jnp.abs(h), rtol=1e-5)


def test_damping_and_learning_rate():
    f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
    w = jnp.array([1.0, 1.0])
    # (H + 1 I)^{-1} g = [1/2, 4/5]; times -0.5
    np.testing.assert_allclose(_step(newton(0.5, damping=1.0), f, w) - w, [-0.25, -0.4], rtol=1e-6)
    traced = jax.jit(lambda d: _step(newton(damping=d), f, w))(1.0)  # damping may be traced
    np.testing.assert_allclose(traced - w, [-0.5, -0.8], rtol=1e-6)


def test_flax_nnx_optimizer_accepts_newton():
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (20, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3
    optimizer = nnx.Optimizer(model, newton(), wrt=nnx.Param)
    graphdef, _, rest = nnx.split(model, nnx.Param, ...)

    def value_fn(params):
        return jnp.mean((nnx.merge(graphdef, params, rest)(x)[:, 0] - y) ** 2)

    loss = lambda m: jnp.mean((m(x)[:, 0] - y) ** 2)

    @nnx.jit  # one compiled step, as a training loop runs it (eagerly: ~100 small programs)
    def step(optimizer, model):
        optimizer.update(model, nnx.grad(loss)(model), value_fn=value_fn)
        return loss(model)

    assert float(step(optimizer, model)) < 1e-8  # least squares: one Newton step is exact
    assert float(nnx.jit(loss)(model)) < 1e-8  # the update reached the caller's model


def test_missing_value_fn_and_bad_configuration():
    tx = newton()
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="value_fn"):
        tx.update(w, tx.init(w), w)
    with pytest.raises(ValueError, match="`damping`"):
        newton(damping=-1.0)
    with pytest.raises(ValueError, match="`method`"):
        scale_by_newton(method="lu")
    with pytest.raises(ValueError, match="`cg_maxiter`"):
        scale_by_newton(cg_maxiter=0)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
