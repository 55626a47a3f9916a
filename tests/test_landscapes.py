"""Landscapes: every listed critical point is critical, of the kind the Hessian says."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import curvature
from jaxopt_lab import landscapes as ls

EXTRA = {
    "quadratic_eigenvalues": lambda: ls.quadratic([0.5, 3.0]),
    "quadratic_centered": lambda: ls.quadratic([1.0, 4.0, 9.0], center=[1.0, -2.0, 0.5]),
    "quadratic_matrix": lambda: ls.quadratic(matrix=[[2.0, 1.0], [1.0, 3.0]], center=[1.0, 1.0]),
    "quadratic_saddle": lambda: ls.quadratic([2.0, -1.0]),
    "quadratic_maximum": lambda: ls.quadratic(matrix=[[-2.0, 0.5], [0.5, -1.0]]),
    "quadratic_1d": lambda: ls.quadratic([4.0]),  # lecture 002's L(w) = 2 w^2
}
CASES = {**ls.REGISTRY, **EXTRA}
POINTS = [(name, i) for name, make in CASES.items() for i in range(len(make().critical_points))]


@pytest.mark.parametrize(("name", "index"), POINTS, ids=[f"{n}-{i}" for n, i in POINTS])
def test_critical_point_has_zero_gradient_and_its_kind(name, index):
    with jax.enable_x64(True):
        landscape = CASES[name]()
        point = landscape.critical_points[index]
        w = jnp.asarray(point.location, jnp.float64)
        assert float(landscape(w)) == pytest.approx(point.value, abs=1e-9)
        grad = jax.grad(landscape)(w)
        assert float(jnp.linalg.norm(grad)) < 1e-8
        report = curvature.analyze(landscape, w, grad_tol=1e-8)
        assert report.kind == point.kind
        assert point.kind in ls.KINDS


def test_listed_kinds_cover_every_kind():
    kinds = {p.kind for make in CASES.values() for p in make().critical_points}
    assert kinds == {"minimum", "maximum", "saddle", "degenerate"}


def test_quadratic_eigenvalues_and_matrix_agree():
    q = ls.quadratic(matrix=[[2.0, 1.0], [1.0, 3.0]], center=[1.0, 1.0])
    h = np.asarray(jax.hessian(q)(jnp.zeros(2)))
    np.testing.assert_allclose(h, [[2.0, 1.0], [1.0, 3.0]], rtol=1e-6)
    lecture = ls.lecture_quadratic()
    w = jnp.array([-3.0, 1.0])
    assert float(lecture(w)) == pytest.approx(0.1 * 9 + 2 * 1, rel=1e-6)  # 0.1 w1^2 + 2 w2^2


def test_two_layer_linear_minima_form_a_hyperbola():
    f = ls.two_layer_linear()
    for w1 in (0.25, 1.0, 3.0, -2.0):
        w = jnp.array([w1, 1.0 / w1])
        assert float(f(w)) == pytest.approx(0.0, abs=1e-6)
        assert float(jnp.linalg.norm(jax.grad(f)(w))) < 1e-5


def test_landscapes_are_loss_functions_for_optimizers():
    f = ls.lecture_quadratic()
    result = jol.train(
        f,
        jnp.asarray(f.start),
        jol.momentum(0.1, 0.9),
        jnp.zeros((1,)),
        steps=200,
        key=None,
        progress=False,
    )
    assert float(f(result.params)) < 1e-3 * float(f(jnp.asarray(f.start)))
    params = jnp.asarray(ls.beale().start)
    opt = optax.sgd(1e-3)
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update(jax.grad(ls.beale())(params), state)
        params = optax.apply_updates(params, updates)
    assert float(ls.beale()(params)) < float(ls.beale()(jnp.asarray(ls.beale().start)))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="`w` must have shape"):
        ls.rosenbrock()(jnp.ones(3))
    with pytest.raises(ValueError, match="`eigenvalues` or `matrix`"):
        ls.quadratic()
    with pytest.raises(ValueError, match="`matrix`"):
        ls.quadratic(matrix=[[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="`name`"):
        ls.get("nope")
    assert ls.get("saddle").name == "saddle"


def test_minimize_runs_an_optimizer_from_the_start():
    # gradient descent at a = 0.45 < 2/4 on the lecture quadratic: the loss falls below
    # 1e-6 at step 73 (the race's table says the same)
    path, losses = ls.minimize(jol.sgd(0.45), "lecture_quadratic", 100)
    assert path.shape == (101, 2) and losses.shape == (101,)
    np.testing.assert_array_equal(path[0], ls.lecture_quadratic().start)
    assert int(np.argmax(losses < 1e-6)) == 73
    # the same as stepping by hand
    land = ls.rosenbrock()
    tx = jol.adam(0.02)
    w = jnp.asarray(land.start, jnp.float32)
    state = tx.init(w)
    for _ in range(5):
        u, state = tx.update(jax.grad(land.fn)(w), state, w)
        w = optax.apply_updates(w, u)
    got = ls.minimize(tx, land, 5, start=land.start)
    np.testing.assert_allclose(got.path[-1], w, rtol=1e-6)
    np.testing.assert_allclose(got.losses[-1], land.fn(w), rtol=1e-6)


def test_minimize_keeps_going_past_overflow_and_refuses_bad_input():
    _, losses = ls.minimize(jol.sgd(10.0), "lecture_quadratic", 200)
    assert not np.isfinite(losses[-1])  # diverged: flagged by its values, no exception
    with pytest.raises(ValueError, match="`name` must be one of"):
        ls.minimize(jol.sgd(0.1), "moon", 10)
    with pytest.raises(TypeError, match="`optimizer` must be an optax"):
        ls.minimize(lambda g: g, "rosenbrock", 10)
    with pytest.raises(ValueError, match="`start` must have 2 coordinates"):
        ls.minimize(jol.sgd(0.1), "rosenbrock", 10, start=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="steps"):
        ls.minimize(jol.sgd(0.1), "rosenbrock", -1)
