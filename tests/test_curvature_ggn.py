"""GGN and empirical Fisher operators, preconditioned sharpness, stability thresholds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _curvature_problems import digits_like
from flax import nnx
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jol
from jaxopt_lab import curvature


def _mlp(hidden=4, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "w1": jax.random.normal(k1, (64, hidden)) / 8.0,
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, 10)) / jnp.sqrt(float(hidden)),
    }


def _apply(p, x):
    return jnp.tanh(x @ p["w1"] + p["b1"][None, :]) @ p["w2"]


def _ce(z, y):
    return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()


def _loss(p, batch):
    return _ce(_apply(p, batch[0]), batch[1])


X, Y = digits_like(32)
DATA = (X, Y)


def _jacobian_forms(p):
    """Dense GGN J^T H_z J and empirical Fisher G^T G / N from Jacobians."""
    flat, unravel = ravel_pytree(p)
    z = _apply(p, X)
    jac = jax.jacobian(lambda f: _apply(unravel(f), X))(flat).reshape(z.size, flat.size)
    h_out = jax.hessian(lambda t: _ce(t, Y))(z).reshape(z.size, z.size)
    ggn = jac.T @ h_out @ jac
    per_example = jax.vmap(
        lambda x, y: ravel_pytree(jax.grad(lambda q: _ce(_apply(q, x[None]), y[None]))(p))[0]
    )(X, Y)
    fisher = per_example.T @ per_example / X.shape[0]
    return np.asarray(ggn), np.asarray(fisher)


def test_ggn_and_fisher_match_their_dense_forms_on_an_mlp():
    p = _mlp()
    ggn, fisher = _jacobian_forms(p)
    for output_loss in ("cross_entropy", _ce):  # closed form, and autodiff of a function
        g = curvature.ggn_operator(_apply, output_loss, p, DATA, batch_size=12).dense()
        np.testing.assert_allclose(g, ggn, atol=2e-6 * np.abs(ggn).max())
    f = curvature.fisher_operator(_apply, "cross_entropy", p, DATA, batch_size=12).dense()
    np.testing.assert_allclose(f, fisher, atol=2e-6 * np.abs(fisher).max())
    # the empirical Fisher's trace is the mean squared per-example gradient norm
    est = curvature.trace(curvature.fisher_operator(_apply, _ce, p, DATA), num_probes=100)
    assert abs(est.estimate - np.trace(fisher)) < 4 * est.standard_error


def test_ggn_and_fisher_are_positive_semidefinite():
    p = _mlp(seed=1)
    for op in (
        curvature.ggn_operator(_apply, "cross_entropy", p, DATA),
        curvature.fisher_operator(_apply, "cross_entropy", p, DATA),
    ):
        eig = curvature.eigenvalues(op, k=2, which="both", tol=1e-5)
        assert bool(eig.converged.all())
        assert float(eig.values[-1]) >= -1e-5 * float(eig.values[0])
    # while the Hessian of the same loss is indefinite here
    lam_min = curvature.eigenvalues(_loss, p, DATA, which="smallest").values[0]
    assert float(lam_min) < 0


def test_ggn_equals_the_hessian_for_least_squares_and_at_zero_residual():
    w = jax.random.normal(jax.random.key(3), (64, 3)) / 8.0
    targets = jax.random.normal(jax.random.key(4), (32, 3))
    linear = lambda w, x: x @ w
    g = curvature.ggn_operator(linear, "squared_error", w, (X, targets)).dense()
    h = curvature.hvp_operator(lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2), w, (X, targets))
    np.testing.assert_allclose(g, h.dense(), atol=1e-6)
    # a non-linear model whose targets are its own outputs: the residual term vanishes
    p = _mlp(seed=2)
    own = _apply(p, X)
    sq = lambda q, b: jnp.mean((_apply(q, b[0]) - b[1]) ** 2)
    g = curvature.ggn_operator(_apply, "squared_error", p, (X, own)).dense()
    h = curvature.hvp_operator(sq, p, (X, own)).dense()
    np.testing.assert_allclose(g, h, atol=1e-5 * np.abs(h).max())
    # away from zero residual they differ
    g_off = curvature.ggn_operator(_apply, "squared_error", p, (X, own + 1.0)).dense()
    h_off = curvature.hvp_operator(sq, p, (X, own + 1.0)).dense()
    assert np.abs(g_off - h_off).max() > 1e-3 * np.abs(h_off).max()


def test_ggn_everywhere_a_hessian_operator_goes():
    p = _mlp()
    op = curvature.ggn_operator(_apply, "cross_entropy", p, DATA)
    dense = np.linalg.eigvalsh(np.asarray(op.dense(), np.float64))
    report = curvature.analyze(op, method="dense")
    assert report.curvature == "ggn" and "of the GGN" in str(report)
    assert "(the GGN is singular: lambda_min <= " in str(report) or (
        "(the GGN is not positive definite)" in str(report)
    )
    np.testing.assert_allclose(report.eigenvalues[0], dense[-1], rtol=1e-5)
    assert report.loss == pytest.approx(float(_loss(p, DATA)), rel=1e-6)
    density = curvature.density(op, num_probes=2, num_nodes=10)
    assert np.asarray(density.nodes).min() >= -1e-4 * dense[-1]
    # tracked during training: the GGN's top eigenvalue at the run's parameters
    sub = jax.tree.map(lambda a: a[:32], DATA)
    cb = curvature.sharpness_callback(
        curvature.ggn_operator(_apply, "cross_entropy", p, sub), every=5, learning_rate=0.1
    )
    result = jol.train(
        _loss, p, jol.sgd(0.1), DATA, steps=5, key=None, callbacks=[cb], progress=False
    )
    want = curvature.eigenvalues(
        curvature.ggn_operator(_apply, "cross_entropy", result.params, sub), tol=1e-6
    ).values[0]
    assert result.history["sharpness"][-1] == pytest.approx(float(want), rel=1e-3)


def test_ggn_of_an_nnx_module():
    model = nnx.Linear(64, 10, rngs=nnx.Rngs(0))
    op = curvature.ggn_operator(lambda m, x: m(x), "cross_entropy", model, DATA)
    w = nnx.state(model, nnx.Param)
    flat, unravel = ravel_pytree(w)
    graphdef = nnx.graphdef(model)

    def loss(f):
        return _ce(nnx.merge(graphdef, unravel(f))(X), Y)

    # a linear model: GGN = Hessian
    np.testing.assert_allclose(op.dense(), jax.hessian(loss)(flat), atol=1e-6)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((_apply, "hinge", _mlp(), DATA), ValueError, "`output_loss` must be one of"),
        ((_apply, 3, _mlp(), DATA), TypeError, "`output_loss` must be a function"),
        (("apply", "cross_entropy", _mlp(), DATA), TypeError, "`apply_fn` must be a function"),
        ((_apply, "cross_entropy", _mlp(), None), ValueError, "`data` is required"),
        ((_apply, "cross_entropy", _mlp(), X), TypeError, "`data` must be a pair"),
    ],
)
def test_ggn_refuses_bad_input_by_name(args, error, match):
    with pytest.raises(error, match=match):
        curvature.ggn_operator(*args)


# --- preconditioned sharpness ----------------------------------------------------------------


def _trained(tx, steps=3):
    p = _mlp(seed=4)
    state = tx.init(p)
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction: float ** int32
        for _ in range(steps):
            g = jax.grad(_loss)(p, DATA)
            u, state = tx.update(g, state, p)
            p = optax.apply_updates(p, u)
    return p, state


def _dense_preconditioned(p, diag):
    flat, unravel = ravel_pytree(p)
    h = jax.hessian(lambda f: _loss(unravel(f), DATA))(flat)
    s = 1.0 / np.sqrt(np.asarray(diag, np.float64))
    return np.linalg.eigvalsh(s[:, None] * np.asarray(h, np.float64) * s[None, :])[::-1]


@pytest.mark.parametrize("name", ["jol.adam", "optax.adam"])
def test_preconditioned_sharpness_of_adam_equals_the_dense_form(name):
    tx = jol.adam(0.01) if name == "jol.adam" else optax.adam(0.01)
    p, state = _trained(tx)
    inner = state[0]
    # Adam's P after 3 steps: sqrt(nu / (1 - 0.999^3)) + 1e-8, written out here
    nu = ravel_pytree(inner.nu)[0]
    assert int(inner.count) == 3
    diag = np.sqrt(np.asarray(nu, np.float64) / (1 - 0.999**3)) + 1e-8
    want = _dense_preconditioned(p, diag)
    eig = curvature.preconditioned_sharpness(_loss, p, DATA, state, optimizer=tx, k=2, tol=1e-6)
    np.testing.assert_allclose(np.asarray(eig.values), want[:2], rtol=1e-4)


def test_preconditioner_of_rmsprop_and_adagrad_ours_and_optax():
    cases = [
        (jol.rmsprop(0.01, eps=1e-3), lambda nu: np.sqrt(nu + 1e-3)),  # eps in the sqrt
        (jol.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False), lambda nu: np.sqrt(nu) + 1e-3),
        (optax.rmsprop(0.01), lambda nu: np.sqrt(nu + 1e-8)),
        (jol.adagrad(0.1), lambda r: 1e-7 + np.sqrt(r)),
        (optax.adagrad(0.1), lambda r: np.sqrt(r + 1e-7)),
        (jol.adam(0.01, bias_correction=False), lambda nu: np.sqrt(nu) + 1e-8),
    ]
    for tx, formula in cases:
        p, state = _trained(tx, steps=2)
        inner = state[0]
        moment = inner.sum_of_squares if hasattr(inner, "sum_of_squares") else inner.nu
        want = formula(np.asarray(ravel_pytree(moment)[0], np.float64))
        got = ravel_pytree(curvature.diagonal_preconditioner(state, optimizer=tx))[0]
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5)
        eig = curvature.preconditioned_sharpness(_loss, p, DATA, state, optimizer=tx, tol=1e-6)
        assert float(eig.values[0]) == pytest.approx(_dense_preconditioned(p, want)[0], rel=1e-4)


def test_preconditioned_sharpness_refuses_what_has_no_preconditioner():
    p = _mlp()
    with pytest.raises(ValueError, match="`optimizer` is momentum, which has none"):
        curvature.sharpness_callback(
            _loss, DATA, every=1, preconditioned=True, optimizer=jol.momentum(0.1)
        )
    with pytest.raises(ValueError, match="holds no diagonal preconditioner"):
        curvature.preconditioned_sharpness(_loss, p, DATA, jol.sgd(0.1).init(p))
    with pytest.raises(ValueError, match="no second-moment estimate yet"):
        curvature.preconditioned_sharpness(_loss, p, DATA, jol.adam(0.1).init(p))
    with pytest.raises(ValueError, match="`opt_state` is required"):
        curvature.preconditioned_sharpness(_loss, p, DATA)


def test_stability_thresholds_belong_to_the_rule():
    def c(tx):
        threshold, preconditioned = curvature.stability_threshold(tx)
        return round(float(threshold), 3), preconditioned

    assert c(jol.sgd(0.1)) == (20.0, False)
    assert c(jol.momentum(0.1, 0.9)) == (38.0, False)
    assert c(jol.momentum(0.1, 0.9, form="ema")) == (380.0, False)
    assert c(jol.nesterov(0.1, 0.9)) == (round(3.8 / 2.8 / 0.1, 3), False)
    assert c(jol.adam(0.1, 0.9)) == (380.0, True)  # 38 / lr
    assert c(jol.rmsprop(0.1)) == (20.0, True)
    assert c(jol.adagrad(0.1)) == (20.0, True)
    sched = jol.schedules.linear_decay(0.1, 0.01, 10)
    assert float(curvature.stability_threshold(jol.sgd(sched), 10)[0]) == pytest.approx(200.0)
    assert curvature.stability_threshold(jol.sign_sgd(0.1)) is None
    assert curvature.stability_threshold(optax.sgd(0.1)) is None  # not ours: needs the rate
    assert float(curvature.stability_threshold(optax.sgd(0.1), learning_rate=0.1)[0]) == 20.0


def test_callback_records_adams_preconditioned_sharpness_against_38_over_lr():
    tx = jol.adam(0.01)
    sub = jax.tree.map(lambda a: a[:32], DATA)
    cb = curvature.sharpness_callback(_loss, sub, every=2, preconditioned=True, optimizer=tx)
    result = jol.train(
        _loss, _mlp(seed=5), tx, DATA, steps=4, key=None, callbacks=[cb], progress=False
    )
    h = result.history
    np.testing.assert_allclose(h["stability_threshold"][[0, 2, 4]], 3800.0)
    assert np.isnan(h["preconditioned_sharpness"][0])  # before the first update: no P yet
    # at the end: the same as the function on the final state
    eig = curvature.preconditioned_sharpness(
        _loss, result.params, sub, result.opt_state, optimizer=tx, tol=1e-6
    )
    assert h["preconditioned_sharpness"][-1] == pytest.approx(float(eig.values[0]), rel=1e-3)
    assert h["preconditioned_sharpness"][-1] > 10 * h["sharpness"][-1]


def test_in_a_sweep_each_run_gets_its_own_threshold():
    sub = jax.tree.map(lambda a: a[:32], DATA)
    cb = curvature.sharpness_callback(_loss, sub, every=2)
    result = jol.sweep(
        _loss,
        lambda key: _mlp(seed=6),
        lambda h: jol.momentum(h["learning_rate"], h["momentum"]),
        {"learning_rate": [0.1, 0.05], "momentum": [0.0, 0.9]},
        DATA,
        steps=2,
        callbacks=[cb],
        progress=False,
    )
    lr, mom = result.hparams["learning_rate"], result.hparams["momentum"]
    np.testing.assert_allclose(
        result.curves["stability_threshold"][:, -1], (2 + 2 * mom) / lr, rtol=1e-5
    )
    # the table gains each run's final and largest sharpness, and its threshold
    table = result.table()
    np.testing.assert_allclose(table["stability_threshold"], (2 + 2 * mom) / lr, rtol=1e-5)
    curves = result.curves["sharpness"]
    np.testing.assert_allclose(table["max_sharpness"], np.nanmax(curves, axis=1))
    np.testing.assert_allclose(table["final_sharpness"], curves[:, -1])
    assert result.best_setting(reduce="mean")["learning_rate"] in (0.1, 0.05)  # still a loss
    # sharpness against the learning rate, each momentum with its threshold dashed
    _, ax = jol.plot.sweep_results(result, metric="max_sharpness")
    labels = [line.get_label() for line in ax.lines]
    assert "momentum=0.9: stability threshold" in labels and "momentum=0" in labels
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    np.testing.assert_allclose(sorted(dashed[0].get_ydata()), [20.0, 40.0], rtol=1e-5)
