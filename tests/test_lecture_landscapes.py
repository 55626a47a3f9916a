"""The landscapes the lectures draw: a tilted double well (lecture 004), a plateau
(lecture 000) and a quadratic with noisy gradients (lecture 001)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import landscapes as ls

SIGNS = {"minimum": (1, 1), "saddle": (-1, 1), "maximum": (-1, -1)}


def _eigenvalues(landscape, location):
    with jax.enable_x64(True):
        w = jnp.asarray(location, jnp.float64)
        grad = jax.jit(jax.grad(landscape.fn))(w)
        hess = jax.jit(jax.hessian(landscape.fn))(w)
        return float(jnp.linalg.norm(grad)), np.linalg.eigvalsh(np.asarray(hess))


@pytest.mark.parametrize(
    "make",
    [ls.tilted_double_well, lambda: ls.tilted_double_well(-0.8), ls.plateau, ls.noisy_quadratic],
    ids=["double_well", "double_well_tilted_left", "plateau", "noisy_quadratic"],
)
def test_critical_points_have_zero_gradient_and_hessian_signs_of_their_kind(make):
    landscape = make()
    for point in landscape.critical_points:
        grad_norm, eig = _eigenvalues(landscape, point.location)
        assert grad_norm < 1e-10, point
        assert tuple(np.sign(eig).astype(int)) == SIGNS[point.kind], (point, eig)
        with jax.enable_x64(True):
            value = float(jax.jit(landscape.fn)(jnp.asarray(point.location, jnp.float64)))
        assert value == pytest.approx(point.value, abs=1e-12)


@pytest.mark.parametrize("tilt", [0.5, -0.8, 0.0, 1.5])
def test_double_well_critical_points_are_the_roots_of_the_cubic(tilt):
    points = ls.tilted_double_well(tilt).critical_points
    roots = np.sort(np.roots([4.0, 0.0, -4.0, tilt]).real)  # d/dx: 4x^3 - 4x + a
    np.testing.assert_allclose(sorted(p.location[0] for p in points), roots, atol=1e-9)
    low, high, saddle = points
    assert [p.kind for p in points] == ["minimum", "minimum", "saddle"]
    assert low.value <= high.value < saddle.value
    assert min(low.location[0], high.location[0]) < saddle.location[0]
    assert saddle.location[0] < max(low.location[0], high.location[0])


def test_double_well_refuses_a_tilt_that_removes_a_well():
    with pytest.raises(ValueError, match=r"`tilt` must be a number with \|tilt\| < 8/\(3 sqrt 3\)"):
        ls.tilted_double_well(1.6)
    with pytest.raises(TypeError, match="`tilt`"):
        ls.tilted_double_well("0.5")


def test_gradient_descent_ends_in_the_well_it_starts_in():
    land = ls.tilted_double_well()  # a = 0.5: global minimum left, local minimum right
    global_min, local_min, saddle = (np.asarray(p.location) for p in land.critical_points)
    assert global_min[0] < saddle[0] < local_min[0]
    ends = {
        start: ls.minimize(jol.sgd(0.05), land, 400, start=start).path[-1]
        for start in [(1.5, 0.5), (saddle[0] + 0.05, 0.3), (-1.5, 0.5), (saddle[0] - 0.05, 0.3)]
    }
    starts = list(ends)
    for start in starts[:2]:  # right of the saddle: trapped in the local minimum
        np.testing.assert_allclose(ends[start], local_min, atol=1e-4)
    for start in starts[2:]:  # left of it: the global minimum
        np.testing.assert_allclose(ends[start], global_min, atol=1e-4)
    assert float(land(ends[starts[0]])) - float(land(ends[starts[2]])) > 0.99  # 0.483 vs -0.515


def test_plateau_stalls_gradient_descent_but_not_normalized_steps():
    land = ls.plateau()
    start = jnp.asarray(land.start)
    assert float(jnp.linalg.norm(jax.grad(land)(start))) < 1e-3  # about 1e-4
    _, eig = _eigenvalues(land, land.minima[0].location)
    rate = 1 / eig.max()  # lecture 001's "optimal" step at the minimum, about 8.9
    gd = ls.minimize(jol.sgd(rate), land, 300)
    assert gd.losses[-1] > 0.99 * gd.losses[0]  # 300 steps of GD: under 1% of the loss
    assert np.linalg.norm(gd.path[-1] - gd.path[0]) < 0.5
    normalized = ls.minimize(jol.normalized_sgd(0.1), land, 300)  # step length 0.1
    assert normalized.losses[-1] < 0.01 * normalized.losses[0]
    np.testing.assert_allclose(normalized.path[-1], land.minima[0].location, atol=0.1)
    sign = ls.minimize(jol.sign_sgd(0.1), land, 300)
    assert sign.losses[-1] < 0.5 * sign.losses[0]


# --- the noisy quadratic (LeCun (with Defazio), lecture 001) ---------------------------------

NOISY = ls.noisy_quadratic(std=1.0, eigenvalues=(1.0, 1.0))
KEY = jax.random.key(1)


def test_constant_rate_sgd_fluctuates_with_a_spread_that_grows_with_the_rate():
    spreads = []
    for rate in (0.05, 0.1, 0.4):
        run = ls.minimize(jol.sgd(rate), NOISY, 6000, start=(0.0, 0.0), key=KEY)
        variance = float(run.path[1000:].var(axis=0).mean())
        # w <- (1 - a lam) w - a sigma xi: Var w = a sigma^2 / (lam (2 - a lam))
        assert variance == pytest.approx(rate / (2 - rate), rel=0.2)
        spreads.append(variance)
    assert spreads[0] < spreads[1] < spreads[2]


def test_a_decaying_rate_or_polyak_averaging_lowers_the_final_error():
    steps, rate = 4000, 0.4
    constant = ls.minimize(jol.sgd(rate), NOISY, steps, key=KEY)
    decaying = ls.minimize(jol.sgd(jol.schedules.inverse_time(rate, 10.0)), NOISY, steps, key=KEY)
    # the loss of the last 100 iterates, i.e. the error around the minimum at 0
    assert decaying.losses[-100:].mean() < 0.01 * constant.losses[-100:].mean()

    # Polyak averaging of the same constant-rate run, with the gradient oracle by hand
    tx = optax.chain(jol.sgd(rate), jol.polyak_averaging())
    keys = jax.random.split(KEY, steps)  # what minimize uses at each step

    def step(carry, key):
        w, state = carry
        u, state = tx.update(NOISY.stochastic_gradient(w, key), state, w)
        return (optax.apply_updates(w, u), state), None

    w0 = jnp.asarray(NOISY.start)
    (w, state), _ = jax.jit(lambda: jax.lax.scan(step, (w0, tx.init(w0)), keys))()
    np.testing.assert_allclose(w, constant.path[-1], rtol=1e-4, atol=1e-5)
    averaged = jol.averaged_params(state)
    np.testing.assert_allclose(averaged, constant.path[1:].mean(axis=0), atol=1e-4)
    assert float(NOISY(averaged)) < 0.01 * constant.losses[-100:].mean()


def test_noise_needs_a_key_and_is_reproducible():
    with pytest.raises(ValueError, match="`key` is required"):
        ls.minimize(jol.sgd(0.1), NOISY, 10)
    with pytest.raises(ValueError, match="`key` is required"):
        NOISY.stochastic_gradient(jnp.zeros(2))
    with pytest.raises(TypeError, match="`key` must be a PRNG key"):
        ls.minimize(jol.sgd(0.1), NOISY, 10, key=0)
    a = ls.minimize(jol.sgd(0.1), NOISY, 50, key=KEY)
    b = ls.minimize(jol.sgd(0.1), NOISY, 50, key=KEY)
    np.testing.assert_array_equal(a.path, b.path)
    w = jnp.zeros(2)  # the minimum: the oracle returns pure noise, fresh for each key
    g1, g2 = (NOISY.stochastic_gradient(w, jax.random.key(s)) for s in (1, 2))
    assert float(jnp.linalg.norm(g1 - g2)) > 0.1
    # std 0 is the exact landscape; a key is then unused
    exact = ls.noisy(ls.lecture_quadratic(), 0.0)
    assert exact.name == "noisy_lecture_quadratic" and exact.gradient_noise == 0.0
    np.testing.assert_array_equal(
        ls.minimize(jol.sgd(0.1), exact, 50, key=KEY).path,
        ls.minimize(jol.sgd(0.1), "lecture_quadratic", 50).path,
    )
    g = ls.noisy("rosenbrock", 0.5).stochastic_gradient(jnp.ones(2), KEY)
    assert g.shape == (2,) and float(jnp.linalg.norm(g)) > 0  # the minimum's gradient + noise
    with pytest.raises(ValueError, match="`std`"):
        ls.noisy(ls.rosenbrock(), -1.0)
    assert "noisy_quadratic" not in ls.REGISTRY  # minimize needs a key for it
