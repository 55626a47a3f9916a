"""along_gradient: the second-order Taylor test along g (lectures 003 and 004)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_problems import digits_like, mlp_loss, saddle
from flax import nnx
from jax.flatten_util import ravel_pytree

from jaxopt_lab import curvature
from jaxopt_lab.curvature import along_gradient

RNG = np.random.default_rng(0)
M = RNG.normal(size=(5, 5))
A = jnp.asarray(M @ M.T + 0.5 * np.eye(5), jnp.float32)  # symmetric positive definite
B = jnp.asarray(RNG.normal(size=5), jnp.float32)
W = jnp.asarray(RNG.normal(size=5), jnp.float32)


def quadratic(w, a=A, b=B):
    return 0.5 * w @ (a @ w) - b @ w


def test_quadratic_against_closed_forms():
    out = along_gradient(quadratic, W)
    a, b, w = (np.asarray(t, np.float64) for t in (A, B, W))
    g = a @ w - b
    gg, ghg = g @ g, g @ a @ g
    np.testing.assert_allclose(
        [out.grad_norm_sq, out.gHg, out.curvature, out.optimal_step, out.max_step, out.loss],
        [gg, ghg, ghg / gg, gg / ghg, 2 * gg / ghg, 0.5 * w @ a @ w - b @ w],
        rtol=1e-5,
    )
    assert isinstance(out, curvature.AlongGradient) and out.curvature.shape == ()
    jitted = jax.jit(lambda w: along_gradient(quadratic, w))(W)  # traceable: the same numbers
    np.testing.assert_allclose(jitted.curvature, out.curvature, rtol=1e-6)
    # the optimal step is the minimum along the line: nearby steps do worse
    line = jax.vmap(lambda eps: quadratic(W - eps * (A @ W - B)))
    step = float(out.optimal_step)
    at = line(jnp.array([step, 0.98 * step, 1.02 * step]))
    assert at[0] < at[1] and at[0] < at[2]
    # at max_step the quadratic model (here the loss itself) is back at its start
    model = lambda eps: out.loss - eps * out.grad_norm_sq + 0.5 * eps**2 * out.gHg
    assert float(model(out.max_step)) == pytest.approx(float(out.loss), abs=1e-4)
    assert float(line(out.max_step[None])[0]) == pytest.approx(float(out.loss), abs=1e-4)
    # in between the model (and the loss) decreases: g'g > eps/2 g'Hg
    assert float(line(0.5 * out.max_step[None])[0]) < float(out.loss)
    assert float(line(1.1 * out.max_step[None])[0]) > float(out.loss)


def test_several_arguments_are_passed_on_in_order():
    by_closure = along_gradient(quadratic, W)
    by_args = along_gradient(quadratic, W, A, B)
    for got, want in zip(by_args, by_closure, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # a scalar argument is no example axis: it is passed as it is
    scaled = along_gradient(lambda w, a, b, c: c * quadratic(w, a, b), W, A, B, 3.0)
    np.testing.assert_allclose(scaled.curvature, 3.0 * by_closure.curvature, rtol=1e-5)
    np.testing.assert_allclose(scaled.optimal_step, by_closure.optimal_step / 3.0, rtol=1e-5)


def test_negative_curvature_along_g_gives_infinite_steps():
    w = jnp.array([0.1, 1.0])  # saddle x^2 - y^2: g = (0.2, -2), H = diag(2, -2)
    out = along_gradient(saddle, w)
    gg, ghg = 0.04 + 4.0, 2 * 0.04 - 2 * 4.0
    assert float(out.gHg) == pytest.approx(ghg, rel=1e-5)
    assert float(out.curvature) == pytest.approx(ghg / gg, rel=1e-5)  # reported, negative
    assert out.optimal_step == np.inf and out.max_step == np.inf
    g = jax.grad(saddle)(w)
    for eps in (0.01, 1.0, 100.0):  # every step decreases the (here exact) quadratic model
        assert float(saddle(w - eps * g)) < float(saddle(w))
    # positive curvature along g near the other axis: finite steps again
    assert np.isfinite(along_gradient(saddle, jnp.array([1.0, 0.1])).max_step)
    # at the critical point there is no direction: NaN, not a number made up
    at_zero = along_gradient(saddle, jnp.zeros(2))
    assert at_zero.grad_norm_sq == 0.0
    assert np.isnan(at_zero.curvature) and np.isnan(at_zero.optimal_step)


def test_mlp_against_dense_hessian():
    rng = np.random.default_rng(1)  # a 64-2-10 tanh MLP: 160 parameters
    shapes = {"w1": (64, 2), "b1": (2,), "w2": (2, 10), "b2": (10,)}
    params = {k: jnp.asarray(0.3 * rng.normal(size=s), jnp.float32) for k, s in shapes.items()}
    batch = digits_like(32)
    flat, unravel = ravel_pytree(params)
    f = lambda v: mlp_loss(unravel(v), batch)
    h = np.asarray(jax.jit(jax.hessian(f))(flat), np.float64)
    g = np.asarray(jax.jit(jax.grad(f))(flat), np.float64)
    out = along_gradient(mlp_loss, params, batch)
    assert float(out.gHg) == pytest.approx(g @ h @ g, rel=1e-4)
    assert float(out.grad_norm_sq) == pytest.approx(g @ g, rel=1e-5)
    assert float(out.curvature) == pytest.approx((g @ h @ g) / (g @ g), rel=1e-4)
    # the curvature along g lies within the Hessian's spectrum (lecture 004)
    eigs = np.linalg.eigvalsh(h)
    assert eigs[0] - 1e-5 <= float(out.curvature) <= eigs[-1] + 1e-5
    # x and y as separate arguments: the same numbers
    split = along_gradient(lambda p, x, y: mlp_loss(p, (x, y)), params, *batch)
    np.testing.assert_allclose(split.gHg, out.gHg, rtol=1e-5)


def test_pytree_params():
    params = {"a": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "rest": [jnp.array([0.3]), jnp.array(2.0)]}
    flat, unravel = ravel_pytree(params)
    d = jnp.arange(1.0, flat.size + 1.0)

    def loss(p):
        v = ravel_pytree(p)[0]
        return jnp.sum(d * v**2) + jnp.sum(v) ** 3 / 30.0 + jnp.prod(v[:3])

    f = lambda v: loss(unravel(v))
    h = np.asarray(jax.jit(jax.hessian(f))(flat), np.float64)
    g = np.asarray(jax.jit(jax.grad(f))(flat), np.float64)
    out = along_gradient(loss, params)
    assert float(out.gHg) == pytest.approx(g @ h @ g, rel=1e-5)
    assert float(out.optimal_step) == pytest.approx((g @ g) / (g @ h @ g), rel=1e-5)


def test_nnx_model():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    x = jnp.asarray(RNG.normal(size=(8, 3)), jnp.float32)
    y = jnp.asarray(RNG.normal(size=(8, 2)), jnp.float32)
    loss = lambda m, x, y: jnp.mean((m(x) - y) ** 2)
    graphdef, state = nnx.split(model)
    pure = lambda s, x, y: loss(nnx.merge(graphdef, s), x, y)
    got, want = along_gradient(loss, model, x, y), along_gradient(pure, state, x, y)
    np.testing.assert_allclose(got.curvature, want.curvature, rtol=1e-5)


def test_bad_problems_are_named():
    with pytest.raises(TypeError, match="`loss_fn` must return a real scalar"):
        along_gradient(lambda w: A @ w, W)
    with pytest.raises(
        TypeError, match=r"`loss_fn` is called here as loss_fn\(params, args\[0\]\)"
    ):
        along_gradient(lambda w: quadratic(w), W, A)
    with pytest.raises(TypeError, match="`params`"):
        along_gradient(lambda w: jnp.sum(w), jnp.ones(3, jnp.int32))
    with pytest.raises(ValueError, match="`params`"):
        along_gradient(lambda w: jnp.zeros(()), {})
