"""Two or three steps of every rule, derived by hand from the lecture formulas.

Gradients are fed as a fixed sequence (the transformations only see gradients), and
each expected update is written out in plain Python from the formula in the lecture.
"""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol

G = [0.5, -1.0, 2.0]  # gradient sequence g1, g2, g3 (one scalar parameter)
W0 = 1.0


def run(tx, grads=G, w0=W0):
    """Feeds the gradient sequence; returns the updates and the iterates."""
    params = jnp.array([w0], jnp.float32)
    state = tx.init(params)
    updates, iterates = [], []
    for g in grads:
        u, state = tx.update(jnp.array([g], jnp.float32), state, params)
        params = optax.apply_updates(params, u)
        updates.append(float(u[0]))
        iterates.append(float(params[0]))
    return updates, iterates, state


def close(got, want, rtol=2e-6):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7)


def test_sgd():
    a = 0.1
    close(run(jol.sgd(a))[0], [-a * g for g in G])


def test_momentum_velocity():
    # p <- mu p - a g ; theta <- theta + p   (lectures 000, 003, 004)
    a, mu = 0.1, 0.9
    p1 = -a * G[0]
    p2 = mu * p1 - a * G[1]
    p3 = mu * p2 - a * G[2]
    close(run(jol.momentum(a, mu, form="velocity"))[0], [p1, p2, p3])


def test_momentum_ema():
    # v <- b v + (1 - b) g ; w <- w - a v   (lecture 002), v starts at 0
    a, b = 0.1, 0.9
    v1 = (1 - b) * G[0]
    v2 = b * v1 + (1 - b) * G[1]
    v3 = b * v2 + (1 - b) * G[2]
    # lecture 002's closed form: v^k = (1 - b) sum_t b^(k-t) S^t
    assert v3 == pytest.approx((1 - b) * (b**2 * G[0] + b * G[1] + G[2]))
    close(run(jol.momentum(a, b, form="ema"))[0], [-a * v1, -a * v2, -a * v3])


def test_momentum_accumulate():
    # p <- b p + g ; w <- w - a p   (lecture 001)
    a, b = 0.1, 0.9
    p1 = G[0]
    p2 = b * p1 + G[1]
    p3 = b * p2 + G[2]
    close(run(jol.momentum(a, b, form="accumulate"))[0], [-a * p1, -a * p2, -a * p3])


def test_velocity_and_accumulate_differ_under_a_schedule():
    sched = jol.schedules.linear_decay(0.1, 0.01, 2)  # 0.1, 0.055, 0.01
    a = [0.1, 0.055, 0.01]
    b = 0.9
    # velocity: p_k = b p_{k-1} - a_k g_k
    p1 = -a[0] * G[0]
    p2 = b * p1 - a[1] * G[1]
    p3 = b * p2 - a[2] * G[2]
    close(run(jol.momentum(sched, b, form="velocity"))[0], [p1, p2, p3])
    # accumulate: q_k = b q_{k-1} + g_k ; step -a_k q_k
    q1 = G[0]
    q2 = b * q1 + G[1]
    q3 = b * q2 + G[2]
    close(run(jol.momentum(sched, b, form="accumulate"))[0], [-a[0] * q1, -a[1] * q2, -a[2] * q3])


def test_nesterov():
    # p_{k+1} = b p_k + g ; w <- w - a (g + b p_{k+1})   (lecture 001)
    a, b = 0.1, 0.9
    p1 = G[0]
    p2 = b * p1 + G[1]
    p3 = b * p2 + G[2]
    want = [-a * (G[0] + b * p1), -a * (G[1] + b * p2), -a * (G[2] + b * p3)]
    close(run(jol.nesterov(a, b))[0], want)


def test_adagrad():
    # r <- r + g*g ; dtheta = -eps / (delta + sqrt(r)) * g ; r0 = 0, delta = 1e-7
    a, d = 0.1, 1e-7
    r, want = 0.0, []
    for g in G:
        r += g * g
        want.append(-a / (d + math.sqrt(r)) * g)
    close(run(jol.adagrad(a))[0], want)


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
def test_rmsprop(eps_in_sqrt):
    # r <- rho r + (1 - rho) g*g ; lecture 003/004: -eps g / sqrt(delta + r),
    # lecture 001: -gamma g / (sqrt(r) + eps)
    a, rho, d = 0.01, 0.9, 1e-2  # a large delta so its placement shows in the numbers
    r, want = 0.0, []
    for g in G:
        r = rho * r + (1 - rho) * g * g
        denom = math.sqrt(d + r) if eps_in_sqrt else math.sqrt(r) + d
        want.append(-a * g / denom)
    close(run(jol.rmsprop(a, rho, d, eps_in_sqrt=eps_in_sqrt))[0], want)


def test_rmsprop_momentum():
    # Goodfellow alg. 8.6 form: v <- alpha v - eps g / sqrt(delta + r)
    a, rho, d, m = 0.01, 0.9, 1e-6, 0.5
    r, v, want = 0.0, 0.0, []
    for g in G:
        r = rho * r + (1 - rho) * g * g
        v = m * v - a * g / math.sqrt(d + r)
        want.append(v)
    close(run(jol.rmsprop(a, rho, d, momentum=m))[0], want)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_adam(bias_correction):
    # lecture 003: r <- p2 r + (1-p2) g*g ; s <- p1 s + (1-p1) g ;
    # r^ = r / (1 - p2^t) ; s^ = s / (1 - p1^t) ; dtheta = -eps s^ / (delta + sqrt(r^))
    a, p1, p2, d = 0.1, 0.9, 0.999, 1e-8
    r = s = 0.0
    want = []
    for t, g in enumerate(G, start=1):
        r = p2 * r + (1 - p2) * g * g
        s = p1 * s + (1 - p1) * g
        if bias_correction:
            want.append(-a * (s / (1 - p1**t)) / (d + math.sqrt(r / (1 - p2**t))))
        else:  # lecture 001's steady state
            want.append(-a * s / (math.sqrt(r) + d))
    # with bias correction, float32 computes 1 - 0.999**1 as 9.99987e-4 (so does optax):
    # a relative error of 1.3e-5 in the first steps' r^
    rtol = 3e-5 if bias_correction else 2e-6
    close(run(jol.adam(a, p1, p2, d, bias_correction=bias_correction))[0], want, rtol)


def test_adadelta():
    # Zeiler 2012, alg. 1: E[g2] <- rho E[g2] + (1-rho) g^2 ;
    # dx = -sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) g ; E[dx2] <- rho E[dx2] + (1-rho) dx^2
    lr, rho, eps = 1.0, 0.95, 1e-6
    eg = ex = 0.0
    want = []
    for g in G:
        eg = rho * eg + (1 - rho) * g * g
        dx = math.sqrt(ex + eps) / math.sqrt(eg + eps) * g
        ex = rho * ex + (1 - rho) * dx * dx
        want.append(-lr * dx)
    close(run(jol.adadelta(lr, rho, eps))[0], want)


def test_delta_bar_delta():
    # lecture 003: theta <- theta - eps g ; eps <- eps + d_eps ;
    # d_eps = kappa if dbar(t-1) g(t) > 0, -phi eps if < 0, else 0 ;
    # dbar(t) = (1 - gamma) g(t) + gamma dbar(t-1), dbar(0) = 0
    e0, kappa, phi, gamma = 0.1, 0.05, 0.5, 0.3
    grads = [0.5, 1.0, -2.0, -1.0]
    eps, dbar, want = e0, 0.0, []
    for g in grads:
        want.append(-eps * g)
        if dbar * g > 0:
            eps += kappa
        elif dbar * g < 0:
            eps -= phi * eps
        dbar = (1 - gamma) * g + gamma * dbar
    # step 1: no history, eps stays 0.1; step 2 agrees: +kappa -> 0.15;
    # step 3 disagrees: *(1 - phi) -> 0.075; step 4: dbar(3) < 0 agrees -> 0.125
    assert want == pytest.approx([-0.05, -0.1, 0.3, 0.075])
    updates, _, state = run(jol.delta_bar_delta(e0, kappa, phi, gamma), grads)
    close(updates, want)
    close(float(state[0].learning_rates[0]), eps)


def test_sign_sgd():
    a = 0.1
    close(run(jol.sign_sgd(a), [0.5, -3.0, 0.0])[0], [-a, a, 0.0])


def test_normalized_sgd():
    tx = jol.normalized_sgd(0.1)
    g = {"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}
    u, _ = tx.update(g, tx.init(g))
    close(float(u["a"][0]), -0.1 * 3 / 5)
    close(float(u["b"][0, 0]), -0.1 * 4 / 5)


@pytest.mark.parametrize("kind", ["uniform", "ema"])
def test_polyak_averaging(kind):
    a, alpha = 0.1, 0.8
    decay = alpha if kind == "ema" else None
    tx = optax.chain(jol.sgd(a), jol.polyak_averaging(kind=kind, decay=decay))
    _, iterates, state = run(tx)
    th1, th2, th3 = iterates
    assert th1 == pytest.approx(W0 - a * G[0])
    if kind == "uniform":  # lecture 003: mean of theta_1..theta_t
        want = (th1 + th2 + th3) / 3
    else:  # theta^_t = alpha theta^_{t-1} + (1 - alpha) theta_t, theta^_1 = theta_1
        want = alpha * (alpha * th1 + (1 - alpha) * th2) + (1 - alpha) * th3
    close(float(jol.averaged_params(state)[0]), want)


def test_schedules_values():
    lin = jol.schedules.linear_decay(1.0, 0.01, 100)
    close([float(lin(k)) for k in (0, 50, 100, 500)], [1.0, 0.505, 0.01, 0.01])
    ex = jol.schedules.exponential_decay(2.0, 10.0)
    close([float(ex(k)) for k in (0, 10, 20)], [2.0, 2.0 / math.e, 2.0 / math.e**2])
    inv = jol.schedules.inverse_time(1.0, 5.0)
    close([float(inv(k)) for k in (0, 5, 15)], [1.0, 0.5, 0.25])
