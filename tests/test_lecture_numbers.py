"""The lectures' worked examples with numbers, reproduced with the package.

Each test names the lecture (authors and title) and the slide heading it reproduces. The
numbers come from the slides; where a slide's number or formula is a misprint, the test
asserts the correct value and says why in a comment. Exact arithmetic runs in float64
(``jax.enable_x64``); ``jol.landscapes.minimize`` runs in float32 where that is exact
enough.

Examples left to other test files: the initializers' variances, the Robbins-Monro sums,
each momentum form's terminal velocity, the lookahead form of Nesterov's momentum, and
the standard error of a minibatch gradient.
"""

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import curvature
from jaxopt_lab import landscapes as ls


def descend(tx, loss, w0, steps, grads=None):
    """The iterates ``w_0 .. w_steps`` of ``tx`` on ``loss`` and its updates, as NumPy.

    One compiled ``lax.scan`` (float64 under ``jax.enable_x64``). With ``grads`` (one
    gradient per step) those are fed instead of ``grad(loss)`` (``loss`` may be None).
    """
    w0 = jnp.asarray(w0, jnp.float64)
    xs = None if grads is None else jnp.asarray(np.asarray(grads), jnp.float64)

    def body(carry, g):
        w, state = carry
        if g is None:
            g = jax.grad(loss)(w)
        u, state = tx.update(g, state, w)
        w = optax.apply_updates(w, u)
        return (w, state), (w, u)

    @jax.jit
    def run(w0, xs):
        _, (ws, us) = jax.lax.scan(body, (w0, tx.init(w0)), xs, length=steps)
        return jnp.concatenate([w0[None], ws]), us

    path, updates = run(w0, xs)
    return np.asarray(path), np.asarray(updates)


def gd_paths(land, lrs, steps, start):
    """Gradient descent (``jol.sgd``) on ``land`` at several learning rates in one
    compiled, vmapped scan, in the dtype of ``start`` (float32 for a tuple, as
    ``jol.landscapes.minimize``, unless under x64): the paths, shape
    ``(len(lrs), steps + 1, dim)``, and the losses, ``(len(lrs), steps + 1)``."""
    w0 = jnp.asarray(start)

    def run(lr):
        tx = jol.sgd(lr)

        def body(carry, _):
            w, state = carry
            u, state = tx.update(jax.grad(land)(w), state, w)
            w = optax.apply_updates(w, u)
            return (w, state), w

        _, ws = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
        path = jnp.concatenate([w0[None], ws])
        return path, jax.vmap(land)(path)

    paths, losses = jax.jit(jax.vmap(run))(jnp.asarray(lrs, w0.dtype))
    return np.asarray(paths), np.asarray(losses)


def loss_after_sgd_step(loss, ws, lrs):
    """``loss`` after one ``jol.sgd(lr)`` update from ``w``, for each row of ``ws`` and
    entry of ``lrs`` (paired), in one compiled vmap. Returns NumPy."""

    def one(w, lr):
        tx = jol.sgd(lr)
        u, _ = tx.update(jax.grad(loss)(w), tx.init(w), w)
        return loss(optax.apply_updates(w, u))

    ws, lrs = jnp.asarray(ws), jnp.asarray(lrs)
    return np.asarray(jax.jit(jax.vmap(one))(ws, lrs.astype(ws.dtype)))


def one_step(tx, w, g=None, loss=None):
    """``w`` after one eager update of ``tx`` with gradient ``g`` (or ``grad(loss)(w)``)."""
    g = jax.grad(loss)(w) if g is None else g
    u, _ = tx.update(g, tx.init(w), w)
    return optax.apply_updates(w, u), u


# --- Grosse & Ba, "CSC421/2516 Lectures 7-8: Optimization" ----------------------------


def test_grosse_ba_gd_on_a_quadratic_multiplies_each_eigencoordinate_by_1_minus_a_lambda():
    """Grosse & Ba, "Ill-conditioned curvature": for J = 1/2 theta' A theta,
    theta_k = (I - a A)^k theta_0 = Q (I - a Lambda)^k Q' theta_0; 0 < a lambda <= 1 decays,
    1 < a lambda <= 2 oscillates, a lambda > 2 diverges, so a < 2 / lambda_max; the
    condition number is lambda_max / lambda_min."""
    a_mat = np.array([[2.5, 1.5], [1.5, 2.5]])  # eigenvalues 4 along (1, 1), 1 along (1, -1)
    lam, q = np.linalg.eigh(a_mat)
    theta0 = np.array([1.0, 0.0])
    c = q.T @ theta0  # theta_0 in the Q basis
    with jax.enable_x64(True):
        aj = jnp.asarray(a_mat)

        def loss(theta):
            return 0.5 * theta @ (aj @ theta)

        report = curvature.analyze(loss, jnp.asarray(theta0))
        (path, stable, unstable), _ = gd_paths(loss, [0.3, 0.499, 0.55], 40, theta0)
    np.testing.assert_allclose(report.eigenvalues, [4.0, 1.0], rtol=1e-14)
    assert report.max_stable_lr == pytest.approx(0.5)  # 2 / lambda_max
    assert report.condition_number == pytest.approx(4.0)

    # a = 0.3: a lambda = 0.3 (decays) and 1.2 (oscillates)
    k = np.arange(41)[:, None]
    np.testing.assert_allclose(path, ((1.0 - 0.3 * lam)[None, :] ** k * c) @ q.T, atol=1e-15)
    coords = path @ q  # row k: Q' theta_k
    np.testing.assert_allclose(coords[:, 0], c[0] * 0.7 ** k[:, 0], rtol=1e-12)
    np.testing.assert_allclose(coords[:13, 1], c[1] * (-0.2) ** k[:13, 0], rtol=1e-9)
    assert np.all(np.diff(np.sign(coords[:13, 1])) != 0)  # the a lambda = 1.2 one alternates

    # a < 2 / lambda_max = 0.5 bounds the progress along lambda_min: its factor
    # 1 - a lambda_min stays above 1 - 2 lambda_min / lambda_max = 1 - 2 / 4 = 0.5;
    # just above 0.5 the lambda_max direction grows (factor 1 - 0.55 * 4 = -1.2)
    np.testing.assert_allclose(stable[-1] @ q, c * (1 - 0.499 * lam) ** 40, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(unstable[-1] @ q, c * (1 - 0.55 * lam) ** 40, rtol=1e-10, atol=1e-12)
    assert abs(unstable[-1] @ q[:, 1]) > 1000 * abs(c[1])  # 1.2^40 = 1470
    assert 1 - 2 * lam[0] / lam[1] == pytest.approx(0.5)
    assert 1 - 0.499 * lam[0] > 0.5


def test_grosse_ba_gd_dynamics_are_invariant_to_translation():
    """Grosse & Ba, "Ill-conditioned curvature": the analysis carries over to a quadratic
    not centered at zero, "since the gradient descent dynamics are invariant to
    translation"."""
    a_mat = [[2.5, 1.5], [1.5, 2.5]]
    center = np.array([1.5, -2.0])
    shifted = ls.quadratic(matrix=a_mat, center=center.tolist())
    centered = ls.quadratic(matrix=a_mat)
    start = np.array([0.5, 3.0])
    a = ls.minimize(jol.sgd(0.3), shifted, 15, start=(start + center).tolist())
    b = ls.minimize(jol.sgd(0.3), centered, 15, start=start.tolist())
    np.testing.assert_allclose(a.path - center[None, :], b.path, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5, atol=1e-9)


# the two regression datasets of Grosse & Ba, "Ill-conditioned curvature: normalization"
# (the first one again in Eskandari, "Hessian Matrix"): the rows the slides print
WIDE = (np.array([[114.8, 0.00323], [338.1, 0.00183], [98.8, 0.00279]]), np.array([5.1, 3.2, 4.1]))
OFFSET = (
    np.array([[1003.2, 1005.1], [1001.1, 1008.2], [998.3, 1003.4]]),
    np.array([3.3, 4.8, 2.9]),
)


def _regression(p, x, t):
    """J(w1, w2, b) = mean 1/2 (w'x + b - t)^2 over the rows; p = (w1, w2, b)."""
    y = x @ p[:2] + p[2]
    return 0.5 * jnp.mean((y - t) ** 2)


def _condition(x, t):
    """Eigenvalues (descending) of the regression's Hessian, from the package, and its
    condition number."""
    h = curvature.dense_hessian(_regression, jnp.zeros(3), jnp.asarray(x), jnp.asarray(t))
    lam = np.linalg.eigvalsh(np.asarray(h))[::-1]
    return lam, lam[0] / lam[-1]


@pytest.mark.parametrize(
    ("data", "raw_condition", "correlation"),
    [(WIDE, 1.0125e12, -0.9315336), (OFFSET, 7.1294e11, 0.4250910)],
    ids=["different_scales", "not_centered"],
)
def test_grosse_ba_eskandari_normalizing_inputs_fixes_the_ravine(data, raw_condition, correlation):
    """Grosse & Ba, "Ill-conditioned curvature: normalization" (and Eskandari, "Hessian
    Matrix"): with inputs in arbitrary units (114.8 vs 0.00323) or far from zero
    (~1000) the Hessian of linear regression is extremely ill-conditioned; centering to
    zero mean and unit variance, x~_j = (x_j - mu_j) / sigma_j, fixes it.

    Computed on the three rows the slides print (the rest of each table is elided). With
    the bias, the standardized Hessian is [[1, r, 0], [r, 1, 0], [0, 0, 1]] for the
    inputs' correlation r, so its condition number is (1 + |r|) / (1 - |r|)."""
    x, t = data
    with jax.enable_x64(True):
        _, raw = _condition(x, t)
        xs = (x - x.mean(axis=0)) / x.std(axis=0)
        lam, std = _condition(xs, t)
    assert raw == pytest.approx(raw_condition, rel=1e-3)
    r = np.corrcoef(x.T)[0, 1]
    assert r == pytest.approx(correlation, rel=1e-6)
    np.testing.assert_allclose(lam, [1 + abs(r), 1.0, 1 - abs(r)], rtol=1e-12)
    assert std == pytest.approx((1 + abs(r)) / (1 - abs(r)), rel=1e-12)
    assert std < 30 and raw > 1e11


def test_grosse_ba_eskandari_which_weight_gets_the_larger_update():
    """Grosse & Ba, "Ill-conditioned curvature: normalization": "Which weight, w1 or w2,
    will receive a larger gradient descent update? Which one do you want to receive a
    larger update?" On the slide's rows, from zero: w1 gets a step 61,374 times larger
    (dJ/dw_j = -mean(t x_j)), yet the fit needs |w2| (2102.7) far above |w1| (0.0047).

    Eskandari's "Hessian Matrix" slide asks the same question as "Which weight, x_1 or
    x_2, ...": a misprint for w_1 or w_2 (x_1, x_2 are the inputs)."""
    x, t = WIDE
    with jax.enable_x64(True):
        loss = functools.partial(_regression, x=jnp.asarray(x), t=jnp.asarray(t))
        _, u = one_step(jol.sgd(1e-6), jnp.zeros(3), loss=loss)
        u = np.asarray(u)
    want = 1e-6 * (t[:, None] * x).mean(axis=0)  # -a dJ/dw at w = 0
    np.testing.assert_allclose(u[:2], want, rtol=1e-12)
    assert u[0] / u[1] == pytest.approx(61374.08, rel=1e-6)
    fit = np.linalg.solve(np.c_[x, np.ones(3)], t)  # three rows, three unknowns: exact fit
    np.testing.assert_allclose(fit[:2], [4.6746e-3, 2102.74], rtol=1e-4)


def test_grosse_ba_one_update_with_s_100_is_100_stale_updates_with_s_1():
    """Grosse & Ba, "mini-batch" slides ("Claim: If the wall-clock time were proportional
    to the number of FLOPs, then S=1 would be optimal"): one update with S = 100 is the
    for-loop theta_k <- theta_{k-1} - (a / 100) grad J^(k)(theta_0), k = 1..100, whereas
    S = 1 steps with grad J^(k)(theta_{k-1}), at a fresher theta, so S = 1 is better."""
    x = np.linspace(0.5, 1.5, 100)
    t = 2.0 * x
    alpha = 0.5  # a x_k^2 <= 1.125 < 2: every single-example step is stable

    def example_loss(w, xk, tk):
        return 0.5 * (w[0] * xk - tk) ** 2

    def batch_loss(w, x, t):
        return jnp.mean(jax.vmap(example_loss, (None, 0, 0))(w, x, t))

    @jax.jit
    def s_equals_1(w0, x, t):  # fresh: J^(k) at theta_{k-1}
        tx = jol.sgd(alpha)

        def body(carry, xt):
            w, state = carry
            u, state = tx.update(jax.grad(example_loss)(w, *xt), state, w)
            return (optax.apply_updates(w, u), state), None

        return jax.lax.scan(body, (w0, tx.init(w0)), (x, t))[0][0]

    @jax.jit
    def s_equals_100(w0, x, t):  # one update on the mean gradient, and the stale for-loop
        tx, small = jol.sgd(alpha), jol.sgd(alpha / 100)
        u, _ = tx.update(jax.grad(batch_loss)(w0, x, t), tx.init(w0), w0)
        stale = jax.vmap(jax.grad(example_loss), (None, 0, 0))(w0, x, t)  # all at theta_0

        def body(carry, g):
            w, state = carry
            u, state = small.update(g, state, w)
            return (optax.apply_updates(w, u), state), None

        loop = jax.lax.scan(body, (w0, small.init(w0)), stale)[0][0]
        return optax.apply_updates(w0, u), loop

    with jax.enable_x64(True):
        xj, tj, w0 = jnp.asarray(x), jnp.asarray(t), jnp.array([0.0])
        s100, loop = s_equals_100(w0, xj, tj)
        fresh = s_equals_1(w0, xj, tj)  # the same 100 gradient evaluations
        losses = [float(batch_loss(w, xj, tj)) for w in (s100, fresh)]
    np.testing.assert_allclose(np.asarray(loop), np.asarray(s100), rtol=1e-12)
    assert losses[1] < 1e-20 and losses[0] > 0.4


# --- LeCun (with Defazio), "Optimization for Deep Learning" ---------------------------


def test_lecun_gd_regimes_by_learning_rate_over_gamma_opt():
    """LeCun & Defazio, "The Convergence of Gradient Descent": the optimal rate is the
    inverse second derivative, gamma_opt = (d^2 f / dw^2)^-1; pictures for gamma <
    gamma_opt, = gamma_opt, > gamma_opt and >~ 2 gamma_opt. Grosse & Ba, "Ill-conditioned
    curvature", say the same per eigen-coordinate: (1 - a lambda)^k decays for
    0 < a lambda <= 1, oscillates for 1 < a lambda <= 2, diverges for a lambda > 2.

    One run of gradient descent at a = 0.5 on a quadratic with curvatures 1 .. 5 puts one
    coordinate in each regime: gamma / gamma_opt = a lambda = 0.5, 1 (one step), 1.5,
    2 (the edge: |1 - a lambda| = 1, oscillates forever) and 2.5."""
    land = ls.quadratic([1.0, 2.0, 3.0, 4.0, 5.0])
    path = ls.minimize(jol.sgd(0.5), land, 10, start=[1.0] * 5).path
    k = np.arange(11)[:, None]
    np.testing.assert_allclose(path, (1.0 - 0.5 * np.arange(1.0, 6.0))[None, :] ** k, rtol=1e-6)
    slow, one, damped, edge, wild = path.T
    assert np.all(slow > 0) and np.all(np.diff(slow) < 0)  # gamma < gamma_opt
    assert np.all(one[1:] == 0.0)  # gamma = gamma_opt: the minimum in one step
    assert np.all(damped[1::2] < 0) and np.all(damped[::2] > 0)  # oscillates ...
    assert np.all(np.diff(np.abs(damped)) < 0)  # ... and converges
    np.testing.assert_array_equal(edge, (-1.0) ** k[:, 0])  # a lambda = 2
    assert np.all(np.diff(np.abs(wild)) > 0) and abs(wild[-1]) > 50  # >~ 2 gamma_opt


def test_lecun_optimal_learning_rate_in_1d_is_the_newton_step():
    """LeCun & Defazio, "Optimal learning rate in 1D": w_check = w_k - f''(w_k)^-1 f'(w_k)
    zeroes the gradient line; a step with gamma = 1/f'' is that step, and lands on the
    minimum of a quadratic. The package reports 1/f'' as ``optimal_lr`` and 2/f'' as
    ``max_stable_lr``."""
    with jax.enable_x64(True):

        def f(w):  # not quadratic: f'' changes with w
            return jnp.sum(0.25 * w**4 + w**2 - w)

        w = jnp.array([1.5])
        report = curvature.analyze(f, w)  # in 1-D lambda_max is f''(w)
        f2 = 3 * 1.5**2 + 2
        assert report.lambda_max == pytest.approx(f2, rel=1e-14)
        assert report.optimal_lr == pytest.approx(1 / f2, rel=1e-14)
        assert report.max_stable_lr == pytest.approx(2 / f2, rel=1e-14)
        by_sgd, _ = one_step(jol.sgd(report.optimal_lr), w, loss=f)
        w_check = 1.5 - (1.5**3 + 2 * 1.5 - 1) / f2
        np.testing.assert_allclose(np.asarray(by_sgd), [w_check], rtol=1e-14)

        quad = ls.quadratic([3.0], center=[0.75])  # f'' = 3: gamma_opt = 1/3
        one, _ = one_step(jol.sgd(1 / 3), jnp.array([-2.0]), loss=quad)
        np.testing.assert_allclose(np.asarray(one), [0.75], rtol=1e-14)


def test_lecun_quadratic_theory_rate_one_minus_mu_over_l():
    """LeCun & Defazio, "Theory for the quadratic case": f = 1/2 w'Aw - b'w, w* = A^-1 b,
    ||w_{k+1} - w*|| <= ||I - gamma A|| ||w_k - w*||, ||I - gamma A|| =
    max(|1 - mu gamma|, |1 - L gamma|), and at gamma = 1/L the rate is 1 - mu/L."""
    with jax.enable_x64(True):
        a_mat = jnp.array([[5.5, 4.5], [4.5, 5.5]])  # mu = 1 along (1, -1), L = 10 along (1, 1)
        b = jnp.array([1.0, 2.0])

        def f(w):
            return 0.5 * w @ (a_mat @ w) - b @ w

        w_star = np.linalg.solve(np.asarray(a_mat), np.asarray(b))
        np.testing.assert_allclose(w_star, [-0.35, 0.65], rtol=1e-14)
        mu, big_l = 1.0, 10.0
        for gamma in (0.05, 0.1, 0.15, 0.19, 0.21):
            report = curvature.analyze(f, jnp.zeros(2), learning_rate=gamma)
            norm = np.linalg.norm(np.eye(2) - gamma * np.asarray(a_mat), 2)
            want = max(abs(1 - mu * gamma), abs(1 - big_l * gamma))
            assert report.gd_rate == pytest.approx(want, rel=1e-12)
            assert norm == pytest.approx(want, rel=1e-12)
        path, _ = descend(jol.sgd(1.0 / big_l), f, jnp.zeros(2), 30)
        err = np.linalg.norm(path - w_star[None, :], axis=1)
        ratios = err[1:] / err[:-1]
        assert np.all(ratios <= 1 - mu / big_l + 1e-12)
        # from w_0 = 0 the error has a part along mu's eigenvector: the bound is tight
        np.testing.assert_allclose(ratios[1:], 0.9, rtol=1e-10)
        assert jol.curvature.analyze(f, jnp.zeros(2)).gd_rate == pytest.approx(0.9)


def test_lecun_single_linear_unit_hessian_is_twice_the_input_covariance():
    """LeCun & Defazio, "Let's Look at a single linear unit": L(x, y, w) = (y - w'x)^2,
    "Second derivative matrix = Hessian is covariance matrix of input vectors",
    H = (1/P) sum_i x(i) x(i)'; normalize the inputs (zero mean, unit variance) to avoid
    ill conditioning.

    Misprint: for this loss the Hessian is (2/P) sum_i x(i) x(i)' (d^2/dw^2 of
    (y - w'x)^2 is 2 x x'); the slide's formula holds for 1/2 (y - w'x)^2. Proportional to
    the covariance either way, so the conditioning argument stands."""
    x = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 4.0], [4.0, 4.5], [2.5, 3.0]])
    y = np.array([-1.0, -1.0, 1.0, 1.0, 1.0])  # blue -1, red +1
    xs = (x - x.mean(axis=0)) / x.std(axis=0)

    def loss(w, x, y):
        return jnp.mean((y - x @ w) ** 2)

    with jax.enable_x64(True):
        h, hs = (
            np.asarray(curvature.dense_hessian(loss, jnp.zeros(2), jnp.asarray(a), jnp.asarray(y)))
            for a in (x, xs)
        )
    second_moment = x.T @ x / len(x)
    np.testing.assert_allclose(h, 2 * second_moment, rtol=1e-14)
    assert not np.allclose(h, second_moment)
    np.testing.assert_allclose(hs, 2 * np.corrcoef(x.T), rtol=1e-12)  # diagonal 2
    before, after = (np.linalg.cond(m) for m in (h, hs))
    # the inputs' correlation is 0.82: normalizing takes the condition number from 73.3
    # to (1 + 0.82) / (1 - 0.82) = 10.1
    assert before == pytest.approx(73.327, rel=1e-4) and after == pytest.approx(10.106, rel=1e-4)


def test_lecun_max_admissible_learning_rate_two_over_lambda_max():
    """LeCun & Defazio, "Convergence is Slow When Hessian has Different Eigenvalues":
    learning rate 1.5, largest Hessian eigenvalue 0.84, maximum admissible learning rate
    2.38 (= 2 / 0.84 = 2.381).

    The smallest eigenvalue is in the lost figure; 0.12 stands in (it does not enter
    these numbers). Skipped: the stochastic panel's "0.2 (equivalent to a batch learning
    rate of 20)" needs the dataset's size (100 by the arithmetic), also in the figure."""
    land = ls.quadratic([0.84, 0.12])
    report = curvature.analyze(land, jnp.zeros(2))
    assert report.lambda_max == pytest.approx(0.84, rel=1e-6)
    assert round(report.max_stable_lr, 2) == 2.38
    # eta = 1.5 > 1 / 0.84 = 1.19: the steep direction oscillates (1 - 1.26 = -0.26) but
    # converges; 2.38 still converges (2.38 * 0.84 = 1.9992); 2.40 diverges
    paths, _ = gd_paths(land, [1.5, 2.38, 2.40], 200, [1.0, 1.0])
    ok, edge, over = paths[:, :, 0]  # the steep coordinate
    assert np.all(np.diff(np.sign(ok[:10])) != 0) and abs(ok[-1]) < 1e-20
    assert edge[-1] == pytest.approx((1 - 2.38 * 0.84) ** 200, rel=1e-3)  # 0.852
    assert over[-1] == pytest.approx((1 - 2.40 * 0.84) ** 200, rel=1e-3)  # 23.9


ONE_ONE_ONE = ls.two_layer_linear()  # one instance: its Hessian compiles once


@pytest.mark.parametrize(
    ("point", "hessian"),
    [
        ((0.0, 0.0), [[0.0, -2.0], [-2.0, 0.0]]),
        ((1.0, 1.0), [[2.0, 2.0], [2.0, 2.0]]),
        ((2.0, 0.5), [[0.5, 2.0], [2.0, 8.0]]),
        ((-0.5, -2.0), [[8.0, 2.0], [2.0, 0.5]]),
    ],
)
def test_lecun_one_one_one_network_hessians(point, hessian):
    """LeCun & Defazio, "Multilayer Nets Have Non-Convex Objective Functions": the 1-1-1
    network Y = W1 W2 X trained on the single sample X = 1, Y = 1, L(W) = (1 - W1 W2)^2;
    solutions: the hyperbola W2 = 1/W1.

    H = [[2 W2^2, 4 W1 W2 - 2], [4 W1 W2 - 2, 2 W1^2]]: at the origin eigenvalues +-2 (a
    saddle, L = 1); on the hyperbola eigenvalues 0 and 2 (W1^2 + W2^2), the zero one
    along the hyperbola's tangent (W1, -W2)."""
    land = ONE_ONE_ONE
    with jax.enable_x64(True):
        w = jnp.asarray(point, jnp.float64)
        h = np.asarray(curvature.dense_hessian(land, w))
        np.testing.assert_allclose(h, hessian, atol=1e-14)
        lam, vec = np.linalg.eigh(h)
        w1, w2 = point
        if point == (0.0, 0.0):
            assert float(land(w)) == 1.0
            np.testing.assert_allclose(lam, [-2.0, 2.0], atol=1e-14)
        else:
            assert w1 * w2 == 1.0 and float(land(w)) == 0.0
            np.testing.assert_allclose(lam, [0.0, 2 * (w1**2 + w2**2)], atol=1e-13)
            tangent = np.array([w1, -w2]) / math.hypot(w1, w2)
            assert abs(vec[:, 0] @ tangent) == pytest.approx(1.0, rel=1e-12)


def test_lecun_one_one_one_network_gd_lands_on_the_hyperbola():
    """LeCun & Defazio, "Multilayer Nets Have Non-Convex Objective Functions": gradient
    descent from the landscape's start (0.2, -1.5) ends on the solution hyperbola
    W1 W2 = 1 (here its negative branch), a minimum that is not isolated."""
    path = ls.minimize(jol.sgd(0.1), "two_layer_linear", 300).path
    w1, w2 = path[-1]
    assert w1 < 0 and w2 < 0
    assert w1 * w2 == pytest.approx(1.0, abs=1e-5)


def test_lecun_larger_momentum_reacts_more_slowly():
    """LeCun & Defazio, "Larger momentum -> slower reactions to changes in landscape"
    (Beta 0.25, 0.5, 0.75), with "Momentum acceleration methods":
    p_{k+1} = beta p_k + grad, w_{k+1} = w_k - gamma p_{k+1}.

    After a long run of gradient +1 (p -> 1/(1 - beta)) the gradient flips to -1; n steps
    later p_n - p_new = beta^n (p_old - p_new), so settling within 10% of the new velocity
    takes ceil(ln 0.1 / ln beta) steps: 2, 4 and 9."""
    grads = np.r_[np.ones(60), -np.ones(20)][:, None]

    def velocities(beta, grads):  # gamma = 1: each update is -p
        tx = jol.momentum(1.0, beta, form="accumulate")

        def body(state, g):
            u, state = tx.update(g, state, jnp.zeros(1, g.dtype))
            return state, -u[0]

        return jax.lax.scan(body, tx.init(jnp.zeros(1, grads.dtype)), grads)[1]

    betas = np.array([0.25, 0.5, 0.75])
    with jax.enable_x64(True):
        ps = np.asarray(jax.jit(jax.vmap(velocities, (0, None)))(betas, jnp.asarray(grads)))
    settle = []
    for beta, p in zip(betas, ps, strict=True):
        p_old, p_new = p[59], -1.0 / (1.0 - beta)
        frac = (p[60:] - p_new) / (p_old - p_new)
        np.testing.assert_allclose(frac, beta ** np.arange(1, 21), rtol=1e-9, atol=1e-15)
        settle.append(1 + int(np.argmax(np.abs(frac) <= 0.1)))
    assert settle == [2, 4, 9]


def test_lecun_heavy_ball_form_is_the_momentum_form():
    """LeCun & Defazio, "Momentum acceleration methods": SGD + momentum is the heavy ball
    w_{k+1} = w_k - gamma grad f(w_k) + beta (w_k - w_{k-1}), "mathematically equivalent
    to the previous form" (same beta for a constant gamma)."""
    a_mat = np.array([[2.5, 1.5], [1.5, 2.5]])
    land = ls.quadratic(matrix=a_mat.tolist())  # grad = A w
    gamma, beta = 0.1, 0.75
    with jax.enable_x64(True):
        w, _ = descend(jol.momentum(gamma, beta, form="accumulate"), land, [1.0, -2.0], 25)
    heavy = w[1:-1] - gamma * w[1:-1] @ a_mat + beta * (w[1:-1] - w[:-2])
    np.testing.assert_allclose(w[2:], heavy, rtol=1e-12, atol=1e-14)


def test_lecun_adam_slide_misprints():
    """LeCun & Defazio, "Adam" (steady state, no bias correction). The slide prints
    m_{t+1} = beta v_t + (1 - beta) g and w_{t+1} = w_t - gamma m_t / (sqrt(v_{t+1}) + eps).

    Misprints: the momentum is m_{t+1} = beta m_t + (1 - beta) g (an EMA of gradients, not
    of v), and the step uses m_{t+1} (with m_t, the first step would be 0). Checked with
    g = 2 then -1, beta = 0.9, alpha = 0.999: the correct second m is 0.08; the slide's
    literal formula would give 0.9 * 0.004 - 0.1 = -0.0964."""
    gamma, beta, alpha, eps = 0.1, 0.9, 0.999, 1e-8
    with jax.enable_x64(True):
        tx = jol.adam(gamma, beta, alpha, eps, bias_correction=False)
        _, u = descend(tx, None, [0.0], 2, grads=[[2.0], [-1.0]])
    m1, v1 = 0.1 * 2.0, 0.001 * 4.0
    m2, v2 = 0.9 * m1 + 0.1 * -1.0, 0.999 * v1 + 0.001 * 1.0
    assert m2 == pytest.approx(0.08)
    np.testing.assert_allclose(
        u[:, 0],
        [-gamma * m1 / (math.sqrt(v1) + eps), -gamma * m2 / (math.sqrt(v2) + eps)],
        rtol=1e-12,
    )
    assert u[0, 0] != 0.0  # not m_0 = 0
    # m_2 = 0.08 > 0 steps down; the literal beta v_1 + (1 - beta) g_2 = -0.0964 would step up
    assert u[1, 0] < 0


# --- Congeduti, "Optimization" --------------------------------------------------------


def test_congeduti_one_armed_bandit():
    """Congeduti, "Learning and Optimization" / "Training and Generalization error": the
    one-armed bandit with training set 1, 0, 0, 0, 0, 0, 0, 1, 1, 0 has the loss
    L(lambda) = -0.3 log(lambda) - 0.7 log(1 - lambda), minimized at lambda_hat = 0.3, with
    L(lambda_hat) = 0.27.

    0.27 is the base-10 logarithm (0.2653); in nats L(0.3) = 0.6109. The generalization
    error CE(lambda_hat) = 0.29 needs the unknown p (the slide: "p_data is unknown"); it
    fits any p in [0.354, 0.381) and is not asserted. Gradient descent at LeCun & Defazio's
    gamma_opt = 1 / L''(lambda_hat) = lambda_hat (1 - lambda_hat) = 0.21 finds lambda_hat."""
    y = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0], np.float64)
    with jax.enable_x64(True):
        yj = jnp.asarray(y)

        def nll(lam):  # the average negative log-likelihood over the ten draws, in nats
            return jnp.mean(-yj * jnp.log(lam[0]) - (1 - yj) * jnp.log(1 - lam[0]))

        assert float(nll(jnp.array([0.4]))) == pytest.approx(
            -0.3 * math.log(0.4) - 0.7 * math.log(0.6), rel=1e-14
        )
        curv = float(curvature.dense_hessian(nll, jnp.array([0.3]))[0, 0])
        assert curv == pytest.approx(1 / 0.3 + 1 / 0.7, rel=1e-12)
        path, _ = descend(jol.sgd(1 / curv), nll, [0.5], 12)
        assert path[-1, 0] == pytest.approx(0.3, abs=1e-12)
        loss = float(nll(jnp.asarray(path[-1])))
    assert loss == pytest.approx(0.6108643, rel=1e-6)
    assert round(loss / math.log(10), 2) == 0.27


def test_congeduti_learning_rate_diagnostics_on_2_w_squared():
    """Congeduti, "Learning Rate Diagnostics": w <- w - alpha dL/dw with alpha = 0.01 "too
    small" (slow progress), 0.48 "too large" (oscillations), 0.51 "much too large"
    (instability).

    The curve is in the lost figure: L(w) = 2 w^2 from w = 1 (L'' = 4, the curve the
    package's diagnose docstring names) fits the three rates, since 2/4 = 0.5 lies between
    0.48 and 0.51; the rates pin L'' to (3.92, 4.17). w_k = (1 - 4 alpha)^k and
    L_k = 2 (1 - 4 alpha)^{2k}; 0.25 = 1/L'' (LeCun & Defazio's gamma_opt) is optimal."""
    land = ls.quadratic([4.0])  # 1/2 * 4 w^2 = 2 w^2
    assert float(land(jnp.array([1.0]))) == 2.0
    report = curvature.analyze(land, jnp.array([1.0]))
    assert report.max_stable_lr == pytest.approx(0.5)
    assert 0.48 < report.max_stable_lr < 0.51
    assert report.optimal_lr == pytest.approx(0.25)
    k = np.arange(31)
    rates = ((0.01, 0.96), (0.48, -0.92), (0.51, -1.04), (0.25, 0.0))
    paths, all_losses = gd_paths(land, [a for a, _ in rates], 30, [1.0])
    for (alpha, factor), path, losses in zip(rates, paths, all_losses, strict=True):
        w = path[:, 0]
        np.testing.assert_allclose(w, factor**k, rtol=2e-5, atol=1e-30)
        np.testing.assert_allclose(losses, 2 * factor ** (2 * k), rtol=4e-5, atol=1e-30)
        if alpha == 0.01:  # slow progress: 30 steps leave 8.6% of the loss, falling steadily
            assert np.all(np.diff(losses) < 0)
            assert losses[-1] / losses[0] == pytest.approx(0.9216**30, rel=1e-4)
        elif alpha == 0.48:  # oscillations: w flips sign, the loss falls 0.8464x per step
            assert np.all(w[1::2] < 0) and np.all(w[::2] > 0) and np.all(np.diff(losses) < 0)
        elif alpha == 0.51:  # instability: the loss grows 1.0816x per step
            assert np.all(np.diff(losses) > 0)
            assert losses[-1] / losses[0] == pytest.approx(1.0816**30, rel=1e-4)
        else:  # gamma_opt: the minimum in one step
            assert np.all(losses[1:] == 0.0)


def test_congeduti_curvature_directions_same_learning_rate():
    """Congeduti, "Curvature directions": L = w1^2 + 2 w2^2 has similar curvature in both
    directions; L = 0.1 w1^2 + 2 w2^2 is much steeper in w2. With alpha = 0.01 for both:
    "slow enough for w_2, too slow for w_1 -> very slow convergence"; with alpha = 0.5:
    "fast enough for w_1, too fast for w_2 -> oscillations".

    Hessians diag(2, 4) (condition number 2) and diag(0.2, 4) (20). Per step w1 is
    multiplied by 1 - 0.2 alpha and w2 by 1 - 4 alpha: 0.998 and 0.96 at alpha = 0.01,
    0.9 and -1 at alpha = 0.5 (w2 flips sign forever, at the edge 2 / lambda_max)."""

    def bowl(w, c):  # c1 w1^2 + c2 w2^2
        return jnp.sum(c * w**2)

    for c, condition in (([1.0, 2.0], 2.0), ([0.1, 2.0], 20.0)):
        h = np.asarray(curvature.dense_hessian(bowl, jnp.zeros(2), jnp.array(c)))
        np.testing.assert_allclose(h, np.diag(2 * np.array(c)), rtol=1e-6)
        assert np.linalg.cond(h) == pytest.approx(condition, rel=1e-6)
    steep = ls.lecture_quadratic()  # the same 0.1 w1^2 + 2 w2^2, start (-3, 1)
    assert float(steep(jnp.array([1.0, 1.0]))) == pytest.approx(2.1)
    g = np.asarray(jax.grad(steep)(jnp.array([1.0, 1.0])))
    np.testing.assert_allclose(g, [0.2, 4.0])  # |dL/dw1| << |dL/dw2|

    k = np.arange(101)
    (slow, osc), _ = gd_paths(steep, [0.01, 0.5], 100, steep.start)
    np.testing.assert_allclose(slow[:, 0], -3 * 0.998**k, rtol=1e-4)
    np.testing.assert_allclose(slow[:, 1], 0.96**k, rtol=1e-4)
    assert abs(slow[-1, 1]) < 0.02 and abs(slow[-1, 0]) > 2.4  # w2 done, w1 barely moved

    np.testing.assert_allclose(osc[:, 0], -3 * 0.9**k, rtol=1e-4)
    np.testing.assert_array_equal(osc[:, 1], (-1.0) ** k)  # w2 = +-1: never converges


def test_congeduti_normalizing_gradients_moves_a_fixed_distance_per_axis():
    """Congeduti, "Normalizing gradients": with the per-coordinate normalized gradient
    (dL/dw1 / |dL/dw1|, dL/dw2 / |dL/dw2|) each step moves a fixed distance along each
    axis. On L = 0.1 w1^2 + 2 w2^2 from (-3, 1) with alpha = 0.5 (where plain gradient
    descent oscillates in w2 forever): w2 reaches 0 in 2 steps and w1 in 6, exactly."""
    path = ls.minimize(jol.sign_sgd(0.5), "lecture_quadratic", 10).path
    steps = np.abs(np.diff(path, axis=0))
    np.testing.assert_array_equal(steps[:2], 0.5)  # both axes move 0.5
    np.testing.assert_array_equal(steps[2:6, 0], 0.5)
    np.testing.assert_array_equal(path[6:], 0.0)  # at the minimum, sign(0) = 0 keeps it there


def test_congeduti_ema_momentum_weights():
    """Congeduti, "Momentum": v <- beta v + (1 - beta) S, beta = 0.9, v^-1 = 0:
    v^0 = (1 - beta) S^0, v^2 = (1 - beta)(beta^2 S^0 + beta S^1 + S^2) with weights
    0.81, 0.9, 1 (times 0.1), v^k = (1 - beta) sum_t beta^{k-t} S^t over S^0 .. S^50;
    "for many iterations it is an average" and "momentum ... reduces variance".

    Read from jol.momentum(1, 0.9, form="ema") by feeding unit gradients: S^t is the t-th
    unit vector, so coordinate t of v^k is the weight of S^t. The weights sum to
    1 - 0.9^51 = 0.9954; their squares to 0.01 (1 - 0.81^51) / 0.19 = 0.0526: i.i.d. noise
    in the gradients keeps 1/19 of its variance (the limit (1 - beta) / (1 + beta))."""
    beta, n = 0.9, 51
    with jax.enable_x64(True):
        unit = list(np.eye(n))
        _, updates = descend(jol.momentum(1.0, beta, form="ema"), None, np.zeros(n), n, unit)
    v = -updates  # alpha = 1: w <- w - v
    np.testing.assert_allclose(v[0, :1], [0.1], rtol=1e-14)
    np.testing.assert_allclose(v[2, :3], [0.081, 0.09, 0.1], rtol=1e-14)
    np.testing.assert_allclose(v[2, :3] / 0.1, [0.81, 0.9, 1.0], rtol=1e-14)
    assert np.all(v[2, 3:] == 0.0)  # no future gradients
    weights = v[-1]
    np.testing.assert_allclose(weights, 0.1 * beta ** (n - 1 - np.arange(n)), rtol=1e-12)
    assert weights.sum() == pytest.approx(1 - beta**n, rel=1e-12)
    assert weights.sum() == pytest.approx(0.99536, abs=1e-5)
    assert (weights**2).sum() == pytest.approx(0.01 * (1 - 0.81**n) / 0.19, rel=1e-12)
    assert (weights**2).sum() == pytest.approx(1 / 19, rel=1e-4)


def test_lecun_ema_momentum_is_heavy_ball_rescaled():
    """LeCun & Defazio, "Adam": "The exponential-moving-average method of updating
    momentum is equivalent to the standard form under rescaling" (Congeduti's EMA form
    with rate alpha is the heavy ball with rate (1 - beta) alpha)."""
    rng = np.random.default_rng(0)
    grads = list(rng.normal(size=(12, 3)))
    alpha, beta = 0.3, 0.9
    with jax.enable_x64(True):
        _, ema = descend(jol.momentum(alpha, beta, form="ema"), None, np.zeros(3), 12, grads)
        _, heavy = descend(
            jol.momentum((1 - beta) * alpha, beta, form="accumulate"), None, np.zeros(3), 12, grads
        )
    np.testing.assert_allclose(ema, heavy, rtol=1e-12, atol=1e-15)


# --- Favaro, "Deep Feedforward Networks - Optimization" -------------------------------


def test_favaro_ill_conditioning_test_and_eskandari_curvature():
    """Favaro, "Ill-Conditioning": J(theta - eps g) = J - eps g'g + 1/2 eps^2 g'Hg, so a
    gradient step lowers the cost iff g'g > 1/2 eps g'Hg; when the two terms cancel the
    cost stops decreasing "although the parameter has not reached any critical point".
    On Congeduti's 0.1 w1^2 + 2 w2^2 at (-3, 1): g = (-0.6, 4), g'g = 16.36,
    g'Hg = 64.072, so the step size where the terms cancel is 2 g'g / g'Hg = 0.51068.

    Eskandari, "Hessian Matrix" (same expansion): with negative curvature g'Hg < 0 the
    cost falls faster than the gradient predicts, with none exactly as predicted, with
    positive more slowly (on the saddle x^2 - y^2)."""
    with jax.enable_x64(True):
        land = ls.lecture_quadratic()
        theta = np.array([-3.0, 1.0])
        h = np.asarray(curvature.dense_hessian(land, jnp.asarray(theta)))
        g = h @ theta  # the gradient of this quadratic (centered at 0)
        np.testing.assert_allclose(g, [-0.6, 4.0], rtol=1e-7)  # 0.1 is stored in float32
        gg, ghg = g @ g, g @ h @ g
        assert gg == pytest.approx(16.36)
        assert ghg == pytest.approx(64.072)
        eps_star = 2 * gg / ghg
        assert eps_star == pytest.approx(0.510675, rel=1e-6)
        j0 = 0.5 * theta @ h @ theta
        epses = np.array([0.2, 0.9 * eps_star, eps_star, 1.1 * eps_star])
        j1 = loss_after_sgd_step(land, np.tile(theta, (4, 1)), epses)
        np.testing.assert_allclose(j1, j0 - epses * gg + 0.5 * epses**2 * ghg, rtol=1e-12)
        assert j1[0] < j0 and j1[1] < j0 and j1[3] > j0
        # where the two terms cancel the cost stays put
        assert j1[2] == pytest.approx(j0, rel=1e-12)
        assert np.linalg.norm(g) > 4  # not a critical point

        saddle = ls.saddle()
        points = np.array([[0.25, 0.5], [0.5, 0.5], [0.5, 0.25]])
        h_saddle = np.asarray(curvature.dense_hessian(saddle, jnp.zeros(2)))  # diag(2, -2)
        after = loss_after_sgd_step(saddle, points, np.full(3, 0.1))
    for point, sign, j1 in zip(points, (-1, 0, 1), after, strict=True):
        gs = np.array([2 * point[0], -2 * point[1]])
        assert np.sign(gs @ h_saddle @ gs) == sign  # negative, no, positive curvature
        actual = (point[0] ** 2 - point[1] ** 2) - j1
        predicted = 0.1 * gs @ gs
        assert np.sign(round(predicted - actual, 12)) == sign


@pytest.mark.parametrize(
    ("net", "slide", "correct"),
    [
        ("one_layer", 1.1, 1.1),
        # slide: x (w^2 - 2 eps x w) = 1.05, a misprint: the step on w is -eps dy/dw =
        # -2 eps x w, so the output is x (w - 2 eps x w)^2 = x w^2 (1 - 2 eps x)^2
        ("two_layer_shared", 1.05, 0.91125),
        ("two_layer", 1.0153125, 1.0153125),
    ],
)
def test_favaro_batch_norm_three_equivalent_networks(net, slide, correct):
    """Favaro, "Batch Normalization" (example): one gradient step on the output y of
    three equivalent networks changes it differently: 1. 1-layer y <- x (w^2 - eps x) at
    z = w^2; 2. 2-layer (shared) y <- x (w^2 - 2 eps x w); 3. 2-layer
    y <- x (w - eps x w)^2 = x (w^2 - 2 eps x w^2 + eps^2 x^2 w^2) at w1 = w2 = w.
    With x = 0.5, w = 1.5, eps = 0.1.

    Misprint in 2.: the shared weight moves by -2 eps x w, so y <- x (w - 2 eps x w)^2
    (0.91125), not x (w^2 - 2 eps x w) (1.05)."""
    x, w, eps = 0.5, 1.5, 0.1
    nets = {
        "one_layer": ({"z": jnp.array(w**2)}, lambda p: x * p["z"]),
        "two_layer_shared": ({"w": jnp.array(w)}, lambda p: x * p["w"] ** 2),
        "two_layer": ({"w1": jnp.array(w), "w2": jnp.array(w)}, lambda p: x * p["w1"] * p["w2"]),
    }
    formulas = {
        "one_layer": x * (w**2 - eps * x),
        "two_layer_shared": x * (w**2 - 2 * eps * x * w),  # as printed
        "two_layer": x * (w**2 - 2 * eps * x * w**2 + eps**2 * x**2 * w**2),
    }
    assert formulas[net] == pytest.approx(slide)
    with jax.enable_x64(True):
        params, out = nets[net]
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        assert float(out(params)) == pytest.approx(x * w**2)  # the same function
        tx = jol.sgd(eps)
        u, _ = tx.update(jax.grad(out)(params), tx.init(params), params)
        y1 = float(out(optax.apply_updates(params, u)))
    assert y1 == pytest.approx(correct, rel=1e-14)
    if net == "two_layer_shared":
        assert y1 == pytest.approx(x * (w - 2 * eps * x * w) ** 2) and y1 != pytest.approx(slide)


def test_favaro_batch_norm_general_depth_k():
    """Favaro, "Batch Normalization" (general case): y = x w_1 ... w_k, g_i = x prod_{j!=i}
    w_j, and after one step y^{t+1} = (x / kappa) prod_i ((w_i)^2 - eps x kappa) =
    x (kappa - eps x sum_i prod_{j!=i} w_j^2 + ... + (-1)^k (eps x)^k kappa^{k-1}),
    kappa = prod_j w_j. Here k = 3, all terms: the middle one is (eps x)^2 kappa sum_i w_i^2."""
    x, eps = 0.5, 0.1
    w = np.array([1.5, 0.8, 1.2])
    kappa = float(np.prod(w))
    with jax.enable_x64(True):

        def out(p):
            return x * jnp.prod(p)

        y1 = float(out(one_step(jol.sgd(eps), jnp.asarray(w), loss=out)[0]))
    assert y1 == pytest.approx(x / kappa * np.prod(w**2 - eps * x * kappa), rel=1e-13)
    pairs = w[1] ** 2 * w[2] ** 2 + w[0] ** 2 * w[2] ** 2 + w[0] ** 2 * w[1] ** 2
    expansion = x * (
        kappa - eps * x * pairs + (eps * x) ** 2 * kappa * (w**2).sum() - (eps * x) ** 3 * kappa**2
    )
    assert y1 == pytest.approx(expansion, rel=1e-13)


def test_favaro_batch_norm_makes_the_three_networks_update_alike():
    """Favaro, "Batch Normalization" (re-parametrization): H' = (H - mu(H)) / sigma(H) is
    (x - mu_x) / sigma_x for all three networks, independent of the weights, so "their
    gradient will be zero"; with H^ = gamma H' + beta the gradient step on (gamma, beta)
    gives H^ <- (gamma - eps H') H' + (beta - eps), the same in all three.

    Taken per example (the loss is one example's H^ with the batch's mean and deviation)
    with delta = 0 and positive weights: for w1 w2 < 0 the sign of H' flips (the slide's
    "= (x - mu_x) / sigma_x" assumes a positive product)."""
    xb = np.array([0.5, 1.0, 2.0, 3.5])
    j, eps, gamma, beta = 0, 0.1, 1.3, -0.4
    want_h = (xb[j] - xb.mean()) / xb.std()
    layers = (  # H = x z, x w^2, x w1 w2
        lambda x, a: x * a,
        lambda x, a: x * a**2,
        lambda x, a: x * a[0] * a[1],
    )

    def normalized(h):
        c = h - jnp.mean(h)
        return c / jnp.sqrt(jnp.mean(c**2))

    @jax.jit
    def step_all(all_params, x):  # one sgd step on each network
        out = []
        for layer, params in zip(layers, all_params, strict=True):

            def loss(p, layer=layer):
                return p["gamma"] * normalized(layer(x, p["w"]))[j] + p["beta"]

            grads = jax.grad(loss)(params)
            tx = jol.sgd(eps)
            u, _ = tx.update(grads, tx.init(params), params)
            new = optax.apply_updates(params, u)
            out.append((normalized(layer(x, params["w"]))[j], grads["w"], new, loss(new)))
        return out

    with jax.enable_x64(True):
        weights = (jnp.array(2.25), jnp.array(1.5), jnp.array([1.5, 1.5]))
        all_params = [{"w": w, "gamma": jnp.array(gamma), "beta": jnp.array(beta)} for w in weights]
        results = step_all(all_params, jnp.asarray(xb))
    for h, grad_w, new, out in results:
        assert float(h) == pytest.approx(want_h, rel=1e-14)
        assert np.max(np.abs(np.asarray(grad_w))) < 1e-13  # the weights get no update
        assert float(new["gamma"]) == pytest.approx(gamma - eps * want_h, rel=1e-14)
        assert float(new["beta"]) == pytest.approx(beta - eps, rel=1e-14)
        assert float(out) == pytest.approx(
            (gamma - eps * want_h) * want_h + (beta - eps), rel=1e-13
        )


@functools.cache
def _polyak_run():
    """Gradient descent on 2 w^2 at alpha = 0.48 from w = 1 for 20 steps, in float64, with
    the uniform Polyak average: (w_20, average)."""
    tx = optax.chain(jol.sgd(0.48), jol.polyak_averaging(kind="uniform"))

    def body(carry, _):
        w, state = carry
        u, state = tx.update(4.0 * w, state, w)  # dL/dw = 4 w
        return (optax.apply_updates(w, u), state), None

    with jax.enable_x64(True):
        w0 = jnp.array([1.0])
        w, state = jax.jit(lambda w0: jax.lax.scan(body, (w0, tx.init(w0)), length=20)[0])(w0)
        return float(w[0]), float(jol.averaged_params(state)[0])


def test_favaro_polyak_averaging_dampens_oscillations():
    """Favaro, "Polyak Averaging": theta^_t = (1/t) sum_{i=1}^t theta^i "dampens
    oscillations". On Congeduti's oscillating run (L = 2 w^2, alpha = 0.48, w_i =
    (-0.92)^i): after 20 steps |w_20| = 0.1887 while the average is -0.01944."""
    w, avg = _polyak_run()
    assert w == pytest.approx(0.92**20, rel=1e-12)
    assert w == pytest.approx(0.18869, rel=1e-4)
    assert avg == pytest.approx(np.mean((-0.92) ** np.arange(1, 21)), rel=1e-6)
    assert avg == pytest.approx(-0.019438, rel=1e-4)


def test_favaro_polyak_uniform_average_is_exact_in_float64():
    """Favaro, "Polyak Averaging": the same run as above, to float64 precision (the
    average once computed its weight 1/t in float32: -0.019437557274960 against the mean
    -0.019437555655475)."""
    _, avg = _polyak_run()
    assert avg == pytest.approx(np.mean((-0.92) ** np.arange(1, 21)), rel=1e-12)


def test_favaro_eskandari_adaptive_method_constants():
    """Favaro, "AdaGrad" (delta = 10^-7) and Eskandari, algorithm 8.4 ("perhaps 10^-7")
    and 8.5 (RMSProp, "usually 10^-6", inside the square root): the package's defaults.
    A gradient as small as delta shows it: AdaGrad's first step is -eps g / (delta + |g|)
    = -eps / 2 at g = delta; RMSProp's (rho = 0.9) at (1 - rho) g^2 = delta is 1/sqrt(2)
    of the step without delta."""
    assert inspect.signature(jol.adagrad).parameters["eps"].default == 1e-7
    assert inspect.signature(jol.rmsprop).parameters["eps"].default == 1e-6
    assert inspect.signature(jol.rmsprop).parameters["eps_in_sqrt"].default is True
    with jax.enable_x64(True):
        _, u = one_step(jol.adagrad(0.1), jnp.zeros(1), jnp.array([1e-7]))
        assert float(u[0]) == pytest.approx(-0.05, rel=1e-9)
        g = math.sqrt(1e-6 / 0.1)
        _, u = one_step(jol.rmsprop(0.1, 0.9), jnp.zeros(1), jnp.array([g]))
        assert float(u[0]) == pytest.approx(-0.1 / math.sqrt(0.1) / math.sqrt(2), rel=1e-9)


# --- Eskandari, "Deep Learning (Optimization)" ----------------------------------------


def test_eskandari_eigen_decomposition_example():
    """Eskandari, "Hessian Matrix / Eigenvectors and Eigenvalues": A = [[2, 3], [2, 1]]
    has u1 = (3, 2), lambda1 = 4 and u2 = (-1, 1), lambda2 = -1; |u1| = sqrt(13),
    |u2| = sqrt(2); normalized u1 = (0.8331, 0.5547), u2 = (-0.7071, 0.7071).

    Misprint: 3 / sqrt(13) = 0.83205, so u1 = (0.8321, 0.5547). (The slide's "u_i u_i^T
    = 1" means u_i^T u_i = 1.) A is not symmetric, so it is no Hessian: the Hessian of
    1/2 x'Ax, which the package computes, is the symmetric part [[2, 2.5], [2.5, 1]], with
    real eigenvalues 1.5 +- sqrt(6.5) and orthonormal eigenvectors, H = U Lambda U'; the
    second derivative along a unit d, d'Hd, is the eigenvalues averaged with weights
    (u_i'd)^2 in [0, 1]."""
    a = np.array([[2.0, 3.0], [2.0, 1.0]])
    u1, u2 = np.array([3.0, 2.0]), np.array([-1.0, 1.0])
    np.testing.assert_allclose(a @ u1, 4 * u1)
    np.testing.assert_allclose(a @ u2, -1 * u2)
    assert np.linalg.norm(u1) == pytest.approx(math.sqrt(13))
    assert np.linalg.norm(u2) == pytest.approx(math.sqrt(2))
    n1, n2 = u1 / np.linalg.norm(u1), u2 / np.linalg.norm(u2)
    np.testing.assert_allclose(np.round(n1, 4), [0.8321, 0.5547])
    np.testing.assert_allclose(np.round(n2, 4), [-0.7071, 0.7071])
    assert round(n1[0], 4) != 0.8331
    u_mat = np.c_[n1, n2]
    np.testing.assert_allclose(u_mat @ np.diag([4.0, -1.0]) @ np.linalg.inv(u_mat), a, atol=1e-14)

    with jax.enable_x64(True):
        aj = jnp.asarray(a)

        def f(x):
            return 0.5 * x @ (aj @ x)

        h = np.asarray(curvature.dense_hessian(f, jnp.zeros(2)))
    np.testing.assert_allclose(h, [[2.0, 2.5], [2.5, 1.0]], rtol=1e-14)
    lam, u = np.linalg.eigh(h)
    np.testing.assert_allclose(lam, [1.5 - math.sqrt(6.5), 1.5 + math.sqrt(6.5)], rtol=1e-14)
    np.testing.assert_allclose(u.T @ u, np.eye(2), atol=1e-14)
    np.testing.assert_allclose(u @ np.diag(lam) @ u.T, h, atol=1e-14)
    for d in (np.array([1.0, 0.0]), np.array([0.6, 0.8]), n1):
        weights = (u.T @ d) ** 2
        assert weights.sum() == pytest.approx(1.0) and np.all((weights >= 0) & (weights <= 1))
        assert d @ h @ d == pytest.approx(weights @ lam, rel=1e-12)
