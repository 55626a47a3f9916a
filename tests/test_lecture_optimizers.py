"""The lectures' optimizers beyond the first-order basics, checked against their formulas.

* Nesterov in lecture 003's look-ahead form, by hand, and its change of variables to
  lecture 001's form;
* momentum coefficients that vary with the step (lecture 001's beta_k), Nesterov's
  (k - 1)/(k + 2);
* the terminal velocity of every momentum form under a constant gradient;
* nonlinear conjugate gradients and L-BFGS (lecture 001: full-batch methods), alone, in
  ``jol.train`` and in the landscape race;
* RMSProp's decay against lecture 000's gamma, and the minimax rate 2/(l_max + l_min).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import landscapes
from jaxopt_lab.cli import race, registry
from jaxopt_lab.transforms.momentum import (
    EmaState,
    EmaWithCountState,
    NesterovLookaheadState,
    TraceState,
    TraceWithCountState,
    nesterov_momentum_schedule,
)

LR, BETA = 0.1, 0.9


def close(got, want, rtol=2e-6, atol=1e-7):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def run(tx, loss, w0, steps, incoming=None):
    """``steps`` full-batch updates with the loss passed as ``value``, ``grad`` and
    ``value_fn`` (as ``jol.train`` passes them), in one compiled scan; returns the
    iterates (the start first) and the final state.

    ``incoming(w)`` replaces the gradient fed to ``update`` (default: the true one).
    """

    def body(carry, _):
        w, state = carry
        value, grad = jax.value_and_grad(loss)(w)
        fed = grad if incoming is None else incoming(w)
        u, state = tx.update(fed, state, w, value=value, grad=grad, value_fn=loss)
        w = optax.apply_updates(w, u)
        return (w, state), w

    @jax.jit
    def go(w):
        (_, state), ws = jax.lax.scan(body, (w, tx.init(w)), None, length=steps)
        return jnp.concatenate([w[None], ws]), state

    return go(jnp.asarray(w0, jnp.float32))


# --- Nesterov: lecture 003's look-ahead form -------------------------------------------------


def test_lookahead_nesterov_by_hand_from_lecture_003():
    # L = a/2 (theta - c)^2 ; v <- b v - e L'(theta + b v) ; theta <- theta + v
    a, c, theta = 3.0, 0.5, 1.0
    grad = lambda t: a * (t - c)
    want, v = [theta], 0.0
    for _ in range(3):
        v = BETA * v - LR * grad(theta + BETA * v)
        theta = theta + v
        want.append(theta)
    assert want[1] == pytest.approx(1.0 - 0.1 * 1.5)  # first step: plain gradient descent
    loss = lambda w: 0.5 * a * jnp.sum((w - c) ** 2)
    tx = jol.nesterov(LR, BETA, form="lookahead")
    path, state = run(tx, loss, [1.0], 3)
    close(path[:, 0], want)
    close(state[0].velocity[0], v)
    # the incoming gradient (at theta) is not used: the gradient is taken at theta + b v
    junk, _ = run(tx, loss, [1.0], 3, incoming=lambda w: jnp.full_like(w, 1e3))
    close(junk[:, 0], want)


def test_lookahead_and_default_forms_are_one_method_in_shifted_variables():
    # lecture 001's w_k = lecture 003's theta_k + b v_k, v_k = theta_k - theta_{k-1}
    h = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    loss = lambda w: 0.5 * w @ (h @ w) + 0.25 * jnp.sum(w**4) - w[0]
    start, steps = [1.5, -1.0], 12
    theta, _ = run(jol.nesterov(LR, BETA, form="lookahead"), loss, start, steps)
    w, _ = run(jol.nesterov(LR, BETA), loss, start, steps)
    v = jnp.concatenate([jnp.zeros((1, 2)), theta[1:] - theta[:-1]])
    shifted = theta + BETA * v
    close(w, shifted, rtol=1e-5, atol=1e-6)
    losses_default = jax.vmap(loss)(w)
    losses_lookahead = jax.vmap(loss)(shifted)  # the loss at lecture 003's look-ahead points
    close(losses_default, losses_lookahead, rtol=1e-5, atol=1e-6)
    assert float(losses_default[-1]) < float(losses_default[0])


def test_lookahead_needs_the_loss_and_form_is_checked():
    tx = jol.nesterov(LR, BETA, form="lookahead")
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="`value_fn`"):
        tx.update(w, tx.init(w), w)
    with pytest.raises(ValueError, match="`form`"):
        jol.nesterov(LR, BETA, form="sutskever")
    with pytest.raises(ValueError, match="`form`"):
        jol.momentum(LR, BETA, form="lookahead")


def test_lookahead_under_jit_and_vmap_over_the_learning_rate():
    loss = lambda w: jnp.sum((w - 1.0) ** 2)

    def final(lr):
        tx = jol.nesterov(lr, BETA, form="lookahead")
        w = jnp.zeros(3)

        def body(carry, _):
            w, s = carry
            u, s = tx.update(jax.grad(loss)(w), s, w, value_fn=loss)
            return (optax.apply_updates(w, u), s), None

        return jax.lax.scan(body, (w, tx.init(w)), None, length=5)[0][0]

    rates = jnp.array([0.05, 0.1])
    batched = jax.jit(jax.vmap(final))(rates)
    for i, lr in enumerate([0.05, 0.1]):
        eager, _ = run(jol.nesterov(lr, BETA, form="lookahead"), loss, jnp.zeros(3), 5)
        close(batched[i], eager[-1], rtol=1e-5)


# --- momentum coefficients that vary with the step ---------------------------------------------

G = [0.5, -1.0, 2.0]  # a fixed gradient sequence, as in test_recurrences


def updates(tx, grads=G):
    w = jnp.zeros(1)
    state = tx.init(w)
    out = []
    for g in grads:
        u, state = tx.update(jnp.array([g]), state, w)
        out.append(float(u[0]))
    return out, state


def test_nesterov_momentum_schedule_values():
    beta = nesterov_momentum_schedule()
    close([float(beta(k)) for k in range(6)], [0.0, 0.0, 1 / 4, 2 / 5, 1 / 2, 4 / 7])
    close(jax.jit(beta)(jnp.int32(8)), 7 / 10)
    assert 0.999 < float(beta(10_000)) < 1.0


def test_a_scheduled_beta_by_hand():
    beta = lambda k: 0.5 + 0.1 * jnp.asarray(k).astype(jnp.float32)  # 0.5, 0.6, 0.7
    b = [0.5, 0.6, 0.7]
    # accumulate (lecture 001): p_{k+1} = b_k p_k + g_k ; step -a p_{k+1}
    p, want = 0.0, []
    for bk, g in zip(b, G, strict=True):
        p = bk * p + g
        want.append(-LR * p)
    got, state = updates(jol.momentum(LR, beta, form="accumulate"))
    close(got, want)
    assert isinstance(state[0], TraceWithCountState) and int(state[0].count) == 3
    # lecture 001's Nesterov with b_k in both lines: -a (g_k + b_k p_{k+1})
    p, want = 0.0, []
    for bk, g in zip(b, G, strict=True):
        p = bk * p + g
        want.append(-LR * (g + bk * p))
    close(updates(jol.nesterov(LR, beta))[0], want)
    # EMA (lecture 002): v <- b_k v + (1 - b_k) g
    v, want = 0.0, []
    for bk, g in zip(b, G, strict=True):
        v = bk * v + (1 - bk) * g
        want.append(-LR * v)
    got, state = updates(jol.momentum(LR, beta, form="ema"))
    close(got, want)
    assert isinstance(state[0], EmaWithCountState)


@pytest.mark.parametrize(
    "build",
    [
        lambda b: jol.momentum(LR, b, form="velocity"),
        lambda b: jol.momentum(LR, b, form="accumulate"),
        lambda b: jol.momentum(LR, b, form="ema"),
        lambda b: jol.nesterov(LR, b),
        lambda b: jol.nesterov(LR, b, form="lookahead"),
        lambda b: jol.rmsprop(0.01, momentum=b),
    ],
    ids=["velocity", "accumulate", "ema", "nesterov", "nesterov-lookahead", "rmsprop"],
)
def test_a_constant_schedule_equals_the_number(build):
    loss = lambda w: jnp.sum(jnp.cos(w) + 0.1 * w**2)
    number, s_number = run(build(BETA), loss, [0.3, -2.0], 4)
    schedule, s_schedule = run(build(lambda k: BETA), loss, [0.3, -2.0], 4)
    close(schedule, number, rtol=1e-6)

    def kinds(state):
        return {type(s) for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "_fields"))}

    counted = {TraceWithCountState, EmaWithCountState, NesterovLookaheadState}
    assert kinds(s_schedule) & counted  # a schedule is read at the update count
    assert not kinds(s_number) & {TraceWithCountState, EmaWithCountState}


def test_constant_beta_keeps_the_state_of_before():
    _, state = updates(jol.momentum(LR, BETA, form="accumulate"))
    assert isinstance(state[0], TraceState) and state[0]._fields == ("trace",)
    _, state = updates(jol.momentum(LR, BETA, form="ema"))
    assert isinstance(state[0], EmaState) and state[0]._fields == ("ema",)


def test_a_scheduled_beta_is_checked_and_has_no_stability_bound():
    with pytest.raises(ValueError, match=r"`beta`.*schedule"):
        jol.momentum(LR, lambda k: 1.5)
    with pytest.raises(ValueError, match=r"`momentum`.*schedule"):
        jol.rmsprop(LR, momentum=lambda k: -0.1)
    with pytest.raises(TypeError, match="`beta`"):
        jol.nesterov(LR, lambda k: None)
    # the curvature tools' bound assumes a constant coefficient: none for a schedule
    assert jol.curvature.stability_threshold(jol.momentum(LR, lambda k: BETA)) is None
    assert jol.curvature.stability_threshold(jol.momentum(LR, BETA))[0] == pytest.approx(38.0)
    lookahead = jol.curvature.stability_threshold(jol.nesterov(LR, BETA, form="lookahead"))
    assert lookahead[0] == pytest.approx(jol.curvature.stability_threshold(jol.nesterov(LR))[0])


# --- terminal velocity under a constant gradient (lectures 001, 002) ------------------------


def _steps_under_constant_gradient(tx, g, steps):
    """The updates of ``steps`` steps on the linear loss g w (constant gradient g)."""
    loss = lambda w: g * jnp.sum(w)

    def body(carry, _):
        w, s = carry
        u, s = tx.update(jnp.full_like(w, g), s, w, value_fn=loss)
        return (optax.apply_updates(w, u), s), u[0]

    w = jnp.zeros(1)
    return jax.jit(lambda w: jax.lax.scan(body, (w, tx.init(w)), None, length=steps)[1])(w)


@pytest.mark.parametrize(
    ("tx", "closed_form", "terminal"),
    [
        # velocity (Goodfellow): p_k = -a g (1 - b^k) / (1 - b) -> -a g / (1 - b)
        (jol.momentum(LR, BETA), lambda k: -(1 - BETA**k) / (1 - BETA), -1 / 0.1),
        # accumulate (lecture 001): the same steps for a constant rate
        (
            jol.momentum(LR, BETA, form="accumulate"),
            lambda k: -(1 - BETA**k) / (1 - BETA),
            -1 / 0.1,
        ),
        # EMA (lecture 002): v_k = g (1 - b^k) -> g: the step tends to -a g
        (jol.momentum(LR, BETA, form="ema"), lambda k: -(1 - BETA**k), -1.0),
        # Nesterov (lecture 001): -a (g + b p_k) = -a g (1 - b^(k+1)) / (1 - b)
        (jol.nesterov(LR, BETA), lambda k: -(1 - BETA ** (k + 1)) / (1 - BETA), -10),
        # look-ahead (lecture 003): the gradient is g everywhere, v_k as the velocity form
        (
            jol.nesterov(LR, BETA, form="lookahead"),
            lambda k: -(1 - BETA**k) / (1 - BETA),
            -10.0,
        ),
    ],
    ids=["velocity", "accumulate", "ema", "nesterov", "lookahead"],
)
def test_terminal_velocity_under_a_constant_gradient(tx, closed_form, terminal):
    g, steps = 2.0, 300  # 0.9^300 = 2e-14
    got = _steps_under_constant_gradient(tx, g, steps)
    k = np.arange(1, steps + 1)
    close(got, LR * g * closed_form(k), rtol=2e-5)
    close(got[-1], LR * g * terminal, rtol=2e-5)  # a g / (1 - b) = 2.0, or a g = 0.2


def test_rmsprop_momentum_is_heavy_ball_on_the_scaled_step():
    # r -> g^2 ; v <- m v - a g / sqrt(delta + r): the velocity tends to -a g/sqrt(.)/(1-m)
    g, m, rho, delta = 2.0, 0.5, 0.9, 1e-6
    got = _steps_under_constant_gradient(jol.rmsprop(LR, rho, delta, momentum=m), g, 300)
    r, v, want = 0.0, 0.0, []
    for _ in range(300):
        r = rho * r + (1 - rho) * g * g
        v = m * v - LR * g / np.sqrt(delta + r)
        want.append(v)
    close(got, want, rtol=2e-5)
    close(got[-1], -LR * g / np.sqrt(delta + g * g) / (1 - m), rtol=2e-5)


def test_rmsprop_decay_is_one_minus_grosse_and_ba_gamma():
    # lecture 000: s <- (1 - gamma) s + gamma g^2 ; theta <- theta - a g / sqrt(s + eps)
    gamma, a, eps = 0.1, 0.01, 1e-2
    s, want = 0.0, []
    for g in G:
        s = (1 - gamma) * s + gamma * g * g
        want.append(-a * g / np.sqrt(s + eps))
    close(updates(jol.rmsprop(a, decay=1 - gamma, eps=eps))[0], want)


# --- nonlinear conjugate gradients and L-BFGS (lecture 001: full batch) ---------------------


def exact_quadratic_linesearch():
    """The exact minimiser along the direction of a quadratic: eta = -g'd / d'Hd."""

    def update(d, state, params, *, grad, value_fn, **extra):
        del extra
        hd = jax.jvp(jax.grad(value_fn), (params,), (d,))[1]
        eta = -optax.tree.vdot(grad, d) / optax.tree.vdot(d, hd)
        return jax.tree.map(lambda x: eta * x, d), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)


def _spd_quadratic(n=5, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    h = q @ np.diag(np.linspace(1.0, 10.0, n)) @ q.T
    h, b = (h + h.T) / 2, rng.standard_normal(n)
    h32, b32 = jnp.asarray(h, jnp.float32), jnp.asarray(b, jnp.float32)
    loss = lambda w: 0.5 * w @ (h32 @ w) - b32 @ w
    return loss, np.linalg.solve(h, b)


@pytest.mark.parametrize("method", ["polak_ribiere_plus", "fletcher_reeves", "hestenes_stiefel"])
def test_cg_ends_in_n_steps_on_a_quadratic_with_exact_line_searches(method):
    n = 5
    loss, w_star = _spd_quadratic(n)
    tx = jol.nonlinear_cg(method=method, linesearch=exact_quadratic_linesearch())
    path, _ = run(tx, loss, jnp.zeros(n), n)
    error = np.linalg.norm(np.asarray(path) - w_star, axis=1)
    error /= np.linalg.norm(w_star)
    assert error[n] < 1e-4, error
    # steepest descent with the same exact line searches is far from done after n steps
    gd, _ = run(optax.chain(jol.sgd(1.0), exact_quadratic_linesearch()), loss, jnp.zeros(n), n)
    assert np.linalg.norm(gd[n] - w_star) / np.linalg.norm(w_star) > 1e-2


def test_cg_with_its_zoom_line_search_on_a_quadratic():
    loss, w_star = _spd_quadratic()
    tx = jol.nonlinear_cg()
    path, _ = run(tx, loss, jnp.zeros(5), 15)
    close(path[-1], w_star, rtol=1e-4, atol=1e-5)
    # value and grad default to value_fn's; without value_fn the message says so
    f = landscapes.rosenbrock()
    w = jnp.array([-1.5, 2.0])
    step = lambda w: optax.apply_updates(w, tx.update(jax.grad(f)(w), tx.init(w), w, value_fn=f)[0])
    assert jax.jit(lambda w: f(step(w)) < f(w))(w)
    with pytest.raises(ValueError, match="`value_fn`"):
        jax.jit(lambda w: tx.update(jax.grad(f)(w), tx.init(w), w))(w)
    with pytest.raises(ValueError, match="`method`"):
        jol.nonlinear_cg(method="polak")


def test_cg_and_lookahead_nesterov_train_through_jol_train():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1).astype(np.float32)
    data = {"x": x, "y": y}
    params = {"w": jnp.zeros(4), "b": jnp.zeros([])}

    def loss_fn(p, batch):
        return jnp.mean((batch["x"] @ p["w"] + p["b"] - batch["y"]) ** 2)

    kwargs = {"key": None, "log_every": 5, "progress": False}
    for tx, steps in [
        (jol.nonlinear_cg(), 10),
        (jol.nesterov(0.05, BETA, form="lookahead"), 200),
    ]:
        result = jol.train(loss_fn, params, tx, data, steps=steps, **kwargs)
        assert not result.diverged
        assert result.history["train_loss"][-1] < 1e-6, result.history["train_loss"]
        close(result.params["w"], [1.0, -2.0, 0.5, 3.0], atol=1e-3)


def test_the_race_has_lbfgs_and_cg_beside_gradient_descent_and_newton():
    assert {"sgd", "newton", "lbfgs", "nonlinear_cg"} <= set(registry.RACERS)
    # full-batch methods are raced, not swept on minibatches
    assert not {"newton", "lbfgs", "nonlinear_cg"} & set(registry.NAMES)
    # on Rosenbrock (jol.landscapes.minimize with the loss passed to every update) all
    # three reach the minimum within 60 steps, where gradient descent at its tuned rate
    # needs thousands (test_conformance)
    names = ["newton", "lbfgs", "nonlinear_cg"]
    rosenbrock = landscapes.rosenbrock()
    results = race.race_one(rosenbrock, [registry.get(n) for n in names], 60)
    for r in results:
        assert r.steps_to_target is not None, r.optimizer
        close(r.path[-1], [1.0, 1.0], atol=1e-3)
    steps = {r.optimizer: r.steps_to_target for r in results}
    assert steps["newton"] < steps["nonlinear_cg"] < steps["lbfgs"], steps  # 5, 21, 37
    table = race.table(results)
    assert "L-BFGS" in table and "nonlinear CG (PR+)" in table and "Newton" in table


# --- the learning rates a Hessian suggests (lecture 001) ------------------------------------


def test_minimax_learning_rate_beats_the_one_dimensional_optimum():
    report = jol.curvature.analyze(lambda w: 0.5 * (w[0] ** 2 + 10.0 * w[1] ** 2), jnp.ones(2))
    assert report.optimal_lr == pytest.approx(0.1)
    assert report.minimax_lr == pytest.approx(2 / 11)
    contraction = lambda a: max(abs(1 - a * 1.0), abs(1 - a * 10.0))
    assert contraction(report.minimax_lr) == pytest.approx(9 / 11)  # (kappa - 1)/(kappa + 1)
    assert contraction(report.optimal_lr) == pytest.approx(0.9)  # 1 - 1/kappa
    assert "minimax lr" in str(report) and "0.181818" in str(report)
    saddle = jol.curvature.analyze(lambda w: w[0] ** 2 - w[1] ** 2, jnp.zeros(2))
    assert np.isnan(saddle.minimax_lr) and "not positive definite" in str(saddle)
