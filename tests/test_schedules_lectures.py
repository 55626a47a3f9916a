"""Lecture 002's linear-then-exponential decay and the Robbins-Monro check (lecture 004)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import schedules

# --- linear, then exponential (Congeduti, lecture 002) ------------------------------------
# a_k = (1 - k/tau) a_0 + (k/tau) a_tau for k <= tau; a_k = a_0 e^{-k/tau} for k >= tau.
# The lecture gives no numbers for it; a_0 = 0.1 is the rate of its SGD slides, and
# a_tau = a_0 / 100 the floor that lecture 003 recommends for the linear part.


def test_default_end_makes_both_lecture_formulas_hold():
    a0, tau = 0.1, 100
    lr = schedules.linear_then_exponential(a0, tau)
    for k in (0, 10, 50, 99, 100):  # linear towards a_0 / e
        a_tau = a0 / math.e
        assert float(lr(k)) == pytest.approx((1 - k / tau) * a0 + k / tau * a_tau, rel=1e-6)
    for k in (100, 150, 200, 500, 1000):  # the lecture's a_0 e^{-k/tau}
        assert float(lr(k)) == pytest.approx(a0 * math.exp(-k / tau), rel=1e-5)


def test_given_end_value_continues_exponentially_from_it():
    a0, a_tau, tau = 0.1, 0.001, 300  # lecture 003: tau a few hundred, a_tau = 1% of a_0
    lr = schedules.linear_then_exponential(a0, tau, end_value=a_tau)
    assert float(lr(0)) == pytest.approx(a0)
    assert float(lr(150)) == pytest.approx((a0 + a_tau) / 2, rel=1e-6)
    assert float(lr(300)) == pytest.approx(a_tau, rel=1e-6)
    assert float(lr(301)) == pytest.approx(a_tau * math.exp(-1 / 300), rel=1e-5)  # no jump
    assert float(lr(600)) == pytest.approx(a_tau / math.e, rel=1e-5)
    values = np.asarray(lr(jnp.arange(1000)))
    assert np.all(np.diff(values) < 0)  # strictly decreasing, no jump at tau
    # the linear part is linear_decay's, the exponential part exponential_decay's shape
    linear = schedules.linear_decay(a0, a_tau, tau)
    np.testing.assert_allclose(values[:301], linear(jnp.arange(301)), rtol=1e-6)


def test_linear_then_exponential_drives_optimizers_and_vmaps():
    lr = schedules.linear_then_exponential(0.1, 10)
    tx = jol.sgd(lr)
    params = jnp.array([1.0])
    state = tx.init(params)
    for _ in range(3):
        u, state = tx.update(2 * params, state, params)
        params = optax.apply_updates(params, u)
    a = [0.1 * (1 - k / 10) + 0.1 / math.e * k / 10 for k in range(3)]
    assert float(params[0]) == pytest.approx(np.prod([1 - 2 * ak for ak in a]), rel=1e-5)
    inits = jnp.array([0.1, 0.2])
    out = jax.vmap(lambda a0: schedules.linear_then_exponential(a0, 10)(20))(inits)
    np.testing.assert_allclose(out, inits * math.exp(-2), rtol=1e-5)


def test_linear_then_exponential_refuses_bad_arguments():
    with pytest.raises(ValueError, match="`tau`"):
        schedules.linear_then_exponential(0.1, 0)
    with pytest.raises(ValueError, match="`init_value`"):
        schedules.linear_then_exponential(-0.1, 10)
    with pytest.raises(ValueError, match="`end_value`"):
        schedules.linear_then_exponential(0.1, 10, end_value=-1.0)


# --- Robbins-Monro: sum eta_k = inf, sum eta_k^2 < inf (Eskandari, lecture 004) -----------

CASES = {
    # name: (schedule, sum diverges, squares converge)
    "constant": (0.1, True, False),
    "1/k": (lambda k: 1.0 / (k + 1), True, True),
    "1/k^2": (lambda k: 1.0 / (k + 1) ** 2, False, True),
    "1/sqrt(k)": (lambda k: 1.0 / np.sqrt(k + 1), True, False),
    "inverse_time": (schedules.inverse_time(0.1, 1.0), True, True),
    "exponential": (schedules.exponential_decay(0.1, 100.0), False, True),
}


@pytest.mark.parametrize("name", CASES)
def test_robbins_monro_verdicts(name):
    schedule, diverges, squares_converge = CASES[name]
    r = schedules.robbins_monro(schedule)
    assert r.horizon == 10**6
    assert (r.sum_diverges, r.squares_converge) == (diverges, squares_converge)
    assert r.satisfied == (diverges and squares_converge)


def test_robbins_monro_partial_sums():
    r = schedules.robbins_monro(0.1, horizon=1000)
    assert (r.sum_rates, r.sum_rates_tenth) == pytest.approx((100.0, 10.0))
    assert (r.sum_squares, r.sum_squares_tenth) == pytest.approx((10.0, 1.0))
    harmonic = schedules.robbins_monro(lambda k: 1.0 / (k + 1))
    euler = 0.5772156649
    assert harmonic.sum_rates == pytest.approx(math.log(1e6) + euler, abs=1e-6)
    assert harmonic.sum_rates_tenth == pytest.approx(math.log(1e5) + euler, abs=1e-5)
    assert harmonic.sum_squares == pytest.approx(math.pi**2 / 6, abs=2e-6)
    # the heuristic is numerical: k^-1.1 converges, but at 10^6 steps its last decade
    # still adds 8% of the sum, so it is judged divergent at this horizon
    assert schedules.robbins_monro(lambda k: (k + 1.0) ** -1.1).sum_diverges
    # inverse_time's squares settle after about 10^3 tau steps
    slow = schedules.inverse_time(0.1, 1e4)
    assert not schedules.robbins_monro(slow).squares_converge
    assert schedules.robbins_monro(slow, horizon=2 * 10**7).squares_converge


def test_robbins_monro_refuses_bad_input():
    with pytest.raises(ValueError, match="`horizon`"):
        schedules.robbins_monro(0.1, horizon=5)
    with pytest.raises(ValueError, match="`rtol`"):
        schedules.robbins_monro(0.1, rtol=1.5)
    with pytest.raises(ValueError, match="`schedule` gave"):
        schedules.robbins_monro(lambda k: 1.0 - k / 100, horizon=1000)
    with pytest.raises(ValueError, match="`schedule`"):
        schedules.robbins_monro(-0.1)
    with pytest.raises(TypeError, match="`schedule` must accept an array"):
        schedules.robbins_monro(lambda k: 0.1 if k < 10 else 0.01, horizon=100)
