"""Dense path and analyze: closed forms, critical-point kinds, errors, Flax NNX."""

import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_problems import bowl_down, digits_like, monkey_saddle, rosenbrock, saddle
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab import curvature


def test_rosenbrock_at_minimum_float64():
    with jax.enable_x64(True):
        report = curvature.analyze(rosenbrock, jnp.array([1.0, 1.0], jnp.float64))
    np.testing.assert_allclose(report.eigenvalues, [1001.6006, 0.39936], rtol=2e-5)
    assert abs(report.condition_number - 2508.0) < 0.05
    assert report.condition_number == pytest.approx(report.condition_number_nonzero)
    assert report.kind == "minimum" and report.method == "dense"
    assert report.counts == {"positive": 2, "negative": 0, "zero": 0}
    assert report.max_stable_lr == pytest.approx(2 / 1001.6006, rel=1e-6)
    assert report.optimal_lr == pytest.approx(1 / 1001.6006, rel=1e-6)
    # lecture 001: at a = 1/L the contraction factor is 1 - mu / L
    assert report.gd_rate == pytest.approx(1 - 0.39936 / 1001.6006, rel=1e-6)


def test_rosenbrock_lanczos_path_float64():
    with jax.enable_x64(True):
        report = curvature.analyze(
            rosenbrock, jnp.array([1.0, 1.0], jnp.float64), method="lanczos", k=1
        )
    np.testing.assert_allclose(report.eigenvalues, [1001.6006, 0.39936], rtol=2e-5)
    assert report.method == "lanczos" and report.converged and report.counts is None
    assert abs(report.condition_number - 2508.0) < 0.05


@pytest.mark.parametrize(
    ("fn", "point", "kind"),
    [
        (saddle, [0.0, 0.0], "saddle"),
        (monkey_saddle, [0.0, 0.0], "degenerate"),
        (bowl_down, [0.0, 0.0], "maximum"),
        (rosenbrock, [1.0, 1.0], "minimum"),
        (rosenbrock, [0.0, 0.0], "not_critical"),
    ],
)
def test_kind_of_point(fn, point, kind):
    assert curvature.analyze(fn, jnp.array(point)).kind == kind


@pytest.mark.parametrize(("fn", "kind"), [(saddle, "saddle"), (monkey_saddle, "degenerate")])
def test_kind_of_point_on_the_lanczos_path(fn, kind):
    report = curvature.analyze(fn, jnp.zeros(2), method="lanczos", k=1)
    assert report.kind == kind and report.method == "lanczos" and report.converged


def test_classify_tolerances():
    assert curvature.classify(1e-3, 2.0, 1.0, grad_tol=1e-2, zero_tol=1e-6) == "minimum"
    assert curvature.classify(1e-1, 2.0, 1.0, grad_tol=1e-2, zero_tol=1e-6) == "not_critical"
    assert curvature.classify(0.0, 2.0, 1e-7, grad_tol=0.0, zero_tol=1e-6) == "degenerate"
    assert curvature.classify(0.0, -1e-7, -3.0, grad_tol=0.0, zero_tol=1e-6) == "degenerate"
    assert curvature.classify(0.0, -1.0, -3.0, grad_tol=0.0, zero_tol=1e-6) == "maximum"
    assert curvature.classify(0.0, 1.0, -3.0, grad_tol=0.0, zero_tol=1e-6) == "saddle"


def test_gd_rate_at_a_given_learning_rate():
    f = lambda w: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * w**2)
    report = curvature.analyze(f, jnp.zeros(2), learning_rate=0.6)
    # max(|1 - 0.6 * 1|, |1 - 0.6 * 4|) = 1.4: unstable since 0.6 > 2 / 4
    assert report.gd_rate == pytest.approx(1.4, rel=1e-6)
    assert report.max_stable_lr == pytest.approx(0.5, rel=1e-6)


def test_counts_and_both_condition_numbers_with_zero_and_negative_eigenvalues():
    lam = jnp.array([3.0, 1.0, 0.0, -2.0])
    report = curvature.analyze(lambda w: 0.5 * jnp.sum(lam * w**2), jnp.zeros(4))
    assert report.kind == "saddle"
    assert report.counts == {"positive": 2, "negative": 1, "zero": 1}
    assert math.isnan(report.condition_number)  # not positive definite
    # max |l| = 3 over min non-zero |l| = 1
    assert report.condition_number_nonzero == pytest.approx(3.0)
    np.testing.assert_allclose(report.eigenvalues, [3.0, 1.0, 0.0, -2.0], atol=1e-6)


def test_report_str_and_html():
    report = curvature.analyze(saddle, jnp.zeros(2))
    text = str(report)
    assert "saddle" in text and "max stable lr" in text and "condition number" in text
    assert "1 positive, 1 negative, 0 zero" in text
    html = report._repr_html_()
    assert html.startswith("<table>") and "saddle" in html
    assert "condition number      undefined (H is not positive definite)" in text
    assert "non-zero |l| ratio  1" in text  # |2| / |-2|
    assert "nan" not in text


def test_report_str_says_why_a_condition_number_is_missing():
    flat = curvature.analyze(lambda w: 0.0 * jnp.sum(w**2), jnp.zeros(2))
    assert "every eigenvalue is zero" in str(flat)
    lam = jnp.array([3.0, 1.0, 0.5, -2.0, -0.25, 0.1])
    quad = lambda w: 0.5 * jnp.sum(lam * w**2)
    report = curvature.analyze(quad, jnp.ones(6), method="lanczos", k=1, key=jax.random.key(0))
    assert math.isnan(report.condition_number_nonzero)  # the middle of the spectrum is unseen
    assert "unknown (Lanczos finds the ends" in str(report)
    assert "nan" not in str(report)


def test_dense_hessian_of_a_pytree_matches_jax_hessian():
    params = {"a": jnp.array([0.3, -0.7]), "b": jnp.array(1.2)}
    f = lambda p, s: s * jnp.sum(jnp.sin(p["a"]) * p["b"] ** 2) + p["a"][0] * p["a"][1] ** 2
    h = curvature.dense_hessian(f, params, 1.5)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    expected = jax.hessian(lambda x: f(unravel(x), 1.5))(flat)
    np.testing.assert_allclose(h, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(h, h.T)


def test_dense_hessian_refuses_above_the_memory_budget():
    with pytest.raises(ValueError, match=r"needs .* GiB.*`max_bytes`.*hvp_operator") as err:
        curvature.dense_hessian(lambda w: jnp.sum(w**2), jnp.zeros(10_000), max_bytes=1 << 20)
    assert "10,000 parameters" in str(err.value)
    with pytest.raises(ValueError, match="max_bytes"):
        curvature.analyze(lambda w: jnp.sum(w**2), jnp.zeros(600), method="dense", max_bytes=1000)


def _linear_loss(w, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def _logistic_loss(w, batch):
    x, y = batch
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def test_linear_regression_closed_form():
    x, labels = digits_like(300)
    y = labels.astype(jnp.float32)
    w = 0.1 * jnp.ones(64)
    expected = x.T @ x / x.shape[0]
    np.testing.assert_allclose(
        curvature.dense_hessian(_linear_loss, w, (x, y)), expected, rtol=1e-5, atol=1e-6
    )
    op = curvature.hvp_operator(_linear_loss, w, (x, y), batch_size=64)  # 300 = 4 * 64 + 44
    np.testing.assert_allclose(op.dense(), expected, rtol=1e-5, atol=1e-6)


def test_logistic_regression_closed_form():
    x, labels = digits_like(300)
    y = (labels % 2).astype(jnp.float32)
    w = jax.random.normal(jax.random.key(3), (64,)) / 8
    p = jax.nn.sigmoid(x @ w)
    expected = (x.T * (p * (1 - p))[None, :]) @ x / x.shape[0]
    np.testing.assert_allclose(
        curvature.dense_hessian(_logistic_loss, w, (x, y)), expected, rtol=1e-5, atol=1e-6
    )
    top = curvature.eigenvalues(_logistic_loss, w, (x, y), k=2, batch_size=128)
    np.testing.assert_allclose(top.values, np.linalg.eigvalsh(expected)[::-1][:2], rtol=1e-4)
    assert bool(top.converged.all())


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.lin1 = nnx.Linear(5, 6, rngs=rngs)
        self.bn = nnx.BatchNorm(6, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.lin2 = nnx.Linear(6, 1, rngs=rngs)

    def __call__(self, x):
        return self.lin2(self.drop(jnp.tanh(self.bn(self.lin1(x)))))


def _net_loss(model, batch):
    x, y = batch
    return jnp.mean((model(x)[:, 0] - y) ** 2)


def test_flax_nnx_model_in_inference_mode():
    model = _Net(nnx.Rngs(0))
    model.bn.mean[...] = jnp.full((6,), 0.3)  # running statistics differ from batch ones
    model.bn.var[...] = jnp.full((6,), 2.0)
    x = jax.random.normal(jax.random.key(1), (40, 5))
    y = jnp.sin(x[:, 0])
    h = curvature.dense_hessian(_net_loss, model, (x, y))

    ref = nnx.clone(model)
    ref.eval()
    graphdef, params, rest = nnx.split(ref, nnx.Param, ...)
    pure = lambda p: _net_loss(nnx.merge(graphdef, p, rest), (x, y))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    expected = jax.jit(jax.hessian(lambda z: pure(unravel(z))))(flat)
    np.testing.assert_allclose(h, 0.5 * (expected + expected.T), rtol=1e-4, atol=1e-5)
    assert model.bn.use_running_average is False  # the user's model is left in training mode

    eig = curvature.eigenvalues(_net_loss, model, (x, y), k=2)
    np.testing.assert_allclose(eig.values, np.linalg.eigvalsh(h)[::-1][:2], rtol=1e-3)
    assert isinstance(eig.vectors, nnx.State)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: curvature.eigenvalues(saddle, jnp.zeros(2), which="middle"), "which"),
        (lambda: curvature.eigenvalues(saddle, jnp.zeros(2), k=0), "k"),
        (lambda: curvature.eigenvalues(saddle, jnp.zeros(2), k=2, which="both"), "k"),
        (lambda: curvature.eigenvalues(saddle, jnp.zeros(2), tol=-1.0), "tol"),
        (lambda: curvature.eigenvalues(saddle, jnp.zeros(2), max_matvecs=0), "max_matvecs"),
        (lambda: curvature.hvp_operator(_linear_loss, jnp.zeros(2), batch_size=0), "batch_size"),
        (lambda: curvature.analyze(saddle, jnp.zeros(2), method="fast"), "method"),
        (lambda: curvature.analyze(saddle, jnp.zeros(2), grad_tol=-1.0), "grad_tol"),
        (lambda: curvature.density(saddle, jnp.zeros(2), num_nodes=3), "num_nodes"),
        (lambda: curvature.trace(saddle, jnp.zeros(2), num_probes=1), "num_probes"),
        (lambda: curvature.sharpness_callback(saddle, every=0), "every"),
        (lambda: curvature.sharpness_callback(saddle, every=1, learning_rate=-1), "learning_rate"),
    ],
)
def test_bad_configuration_names_the_argument(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


def test_operator_with_params_is_rejected():
    op = curvature.hvp_operator(saddle, jnp.zeros(2))
    with pytest.raises(ValueError, match="already holds"):
        curvature.eigenvalues(op, jnp.zeros(2))
    with pytest.raises(ValueError, match="leading"):
        curvature.hvp_operator(_linear_loss, jnp.zeros(2), (jnp.ones((3, 2)), jnp.ones(4)))


def test_analyze_at_a_nonfinite_point_says_so():
    loss = lambda w: jnp.sum(w**2)
    for point in (jnp.full(3, jnp.nan), jnp.array([1.0, jnp.inf, 0.0])):
        for method in ("dense", "lanczos"):
            report = jol.curvature.analyze(loss, point, method=method, k=1)
            assert report.kind == "nonfinite" and not report.converged, report
    with pytest.raises(jol.DivergedError, match="not finite"):
        jol.curvature.analyze(loss, jnp.full(3, jnp.nan), throw=True)
    assert jol.curvature.classify(float("nan"), 1.0, 0.0, 1e-5, 1e-5) == "nonfinite"


def test_dense_hessian_max_bytes_bounds_the_peak():
    from jaxopt_lab.curvature import _dense, _operator

    x = jnp.linspace(-1.0, 1.0, 200 * 40).reshape(200, 40)
    loss = lambda p, x: jnp.mean(jnp.tanh(x @ p["w"]) @ p["v"])
    params = {"w": jnp.full((40, 50), 0.01), "v": jnp.ones(50)}
    size = 40 * 50 + 50
    matrix = size * size * 4
    f, pure, extra = _operator.functional_loss(loss, params, splat=True)
    peak = _dense.peak_bytes(_dense._dense_jit.lower(f, pure, extra, (x,), 64).compile())
    assert matrix < peak <= 2.2 * matrix  # the matrix, its symmetrised copy, 64 HVPs
    with pytest.raises(ValueError, match=r"at its peak.*above `max_bytes`"):
        jol.curvature.dense_hessian(loss, params, x, max_bytes=int(1.5 * matrix))
    h = jol.curvature.dense_hessian(loss, params, x, max_bytes=int(2.5 * matrix))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    want = jax.hessian(lambda z: loss(unravel(z), x))(flat)
    np.testing.assert_allclose(h, 0.5 * (want + want.T), atol=1e-6)


def test_numpy_integers_are_counts():
    """k, batch_size, num_probes, num_nodes, max_matvecs, ... may be NumPy integers."""
    x = np.linspace(-1.0, 1.0, 40, dtype=np.float32).reshape(10, 4)
    data = (x, x @ np.arange(1.0, 5.0, dtype=np.float32))
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
    w = jnp.zeros(4)
    i = np.int64
    op = curvature.hvp_operator(loss, w, data, batch_size=i(3))  # was refused
    ref = curvature.hvp_operator(loss, w, data, batch_size=3)
    np.testing.assert_allclose(op.matvec(jnp.ones(4)), ref.matvec(jnp.ones(4)), rtol=1e-6)
    assert op.batch_size == 3 and type(op.batch_size) is int
    eig = curvature.eigenvalues(op, k=i(2), max_matvecs=i(4), check_every=i(1))
    np.testing.assert_allclose(eig.values, curvature.eigenvalues(op, k=2).values, rtol=1e-5)
    power = curvature.power_iteration(op, k=i(1), max_iters=i(50))
    np.testing.assert_allclose(power.values, eig.values[:1], rtol=1e-3)
    t = curvature.trace(op, num_probes=i(4), probe_batch=i(2))
    assert t == curvature.trace(op, num_probes=4, probe_batch=2)
    dens = curvature.density(op, num_probes=np.int32(2), num_nodes=i(3))
    assert dens.nodes.shape == (2, 3)
    report = curvature.analyze(loss, w, data, k=i(1), max_dense=i(2), batch_size=i(5))
    assert report.method == "lanczos" and report.kind == "not_critical"
    cb = curvature.sharpness_callback(loss, data, every=i(2), max_matvecs=i(10))
    assert cb.every == 2 and type(cb.every) is int
    assert curvature.dense_hessian(lambda p: jnp.sum(p**2), w, max_bytes=i(1 << 20)).shape == (4, 4)
    result = jol.diagnostics.check_grad(
        lambda p: jnp.sum(p**3), jnp.ones(3), num_directions=i(2), max_coordinates=i(0)
    )
    assert result.passed
