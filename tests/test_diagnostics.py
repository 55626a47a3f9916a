"""Diagnostics: gradient check, training-curve diagnosis (lecture 002), unit health."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab import curvature
from jaxopt_lab import diagnostics as dg

# --- check_grad --------------------------------------------------------------------------


def _mlp_problem():
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.normal(size=(8, 16)) / 3, jnp.float32),
        "b1": jnp.zeros(16),
        "w2": jnp.asarray(rng.normal(size=(16, 3)) / 4, jnp.float32),
        "b2": jnp.zeros(3),
    }
    x = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
    y = jnp.arange(32) % 3
    return params, x, y


@jax.custom_vjp
def _scaled_gradient(w):
    return w


_scaled_gradient.defvjp(lambda w: (w, None), lambda _, g: (1.1 * g,))


def _mlp_loss(params, x, y, planted=False):
    w2 = _scaled_gradient(params["w2"]) if planted else params["w2"]
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    logits = h @ w2 + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def test_check_grad_passes_on_mlp():
    params, x, y = _mlp_problem()
    result = dg.check_grad(_mlp_loss, params, x, y)
    assert result.passed
    assert result.failed == ()
    assert [leaf.name for leaf in result.leaves] == ["['b1']", "['b2']", "['w1']", "['w2']"]
    assert all(leaf.relative_error < 1e-3 for leaf in result.leaves)
    by_name = {leaf.name: leaf for leaf in result.leaves}
    assert by_name["['b1']"].coordinates and by_name["['b1']"].num_probes == 4 + 16
    assert not by_name["['w1']"].coordinates and by_name["['w1']"].num_probes == 4


def test_check_grad_names_the_leaf_with_a_planted_wrong_gradient():
    params, x, y = _mlp_problem()
    planted = lambda p, x, y: _mlp_loss(p, x, y, planted=True)
    result = dg.check_grad(planted, params, x, y)
    assert not result.passed
    assert result.failed == ("['w2']",)
    assert result.worst.name == "['w2']"
    # the gradient is 1.1x the truth: relative error 0.1 / 1.1
    assert result.worst.relative_error == pytest.approx(0.1 / 1.1, rel=0.02)
    assert "WRONG" in str(result) and "['w2']" in str(result)
    with pytest.raises(ValueError, match=r"\['w2'\]"):
        dg.check_grad(planted, params, x, y, throw=True)


def test_check_grad_fails_when_finite_differences_are_not_finite():
    # NaN just to the right of w[0] = 1: the difference is NaN, which must not pass
    f = lambda p: jnp.where(p["w"][0] > 1.0 + 1e-9, jnp.nan, jnp.sum(p["w"] ** 2))
    result = dg.check_grad(f, {"w": jnp.array([1.0, 2.0])}, eps=1e-3)
    assert not result.passed
    assert result.failed == ("['w']",)


def test_check_grad_float64_is_tighter_and_checks_a_given_grad_fn():
    with jax.enable_x64(True):
        params, x, y = _mlp_problem()
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x = x.astype(jnp.float64)
        result = dg.check_grad(_mlp_loss, params, x, y)
        assert result.passed
        assert max(leaf.relative_error for leaf in result.leaves) < 1e-7
        assert all(leaf.eps == 1e-5 for leaf in result.leaves)

        def wrong_grad(p, x, y):  # the sign of b2's gradient flipped
            g = jax.grad(_mlp_loss)(p, x, y)
            return {**g, "b2": -g["b2"]}

        result = dg.check_grad(_mlp_loss, params, x, y, grad_fn=wrong_grad)
        assert result.failed == ("['b2']",)
        assert result.worst.relative_error == pytest.approx(2.0, abs=1e-6)  # |-g - g| / |g|


def test_check_grad_errors_name_the_argument():
    params, x, y = _mlp_problem()
    with pytest.raises(ValueError, match="`num_directions`"):
        dg.check_grad(_mlp_loss, params, x, y, num_directions=0)
    with pytest.raises(ValueError, match="`f` must return a scalar"):
        dg.check_grad(lambda p: p["w1"], params)
    with pytest.raises(ValueError, match="floating-point"):
        dg.check_grad(lambda p: jnp.sum(p), jnp.arange(3))


# --- diagnose: lecture 002's L(w) = 2 w^2 ------------------------------------------------


def _two_w_squared(w, batch):
    del batch
    return 2.0 * w**2


def _lecture_history(lr, steps=30, callbacks=()):
    """Gradient descent on lecture 002's L(w) = 2 w^2 from w = 1 with jol.train."""
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr)
    data = jnp.zeros((1,))
    result = jol.train(
        _two_w_squared,
        jnp.array(1.0),
        opt,
        data,
        steps=steps,
        key=None,
        callbacks=callbacks,
        progress=False,
    )
    return result.history


@pytest.mark.parametrize(
    ("lr", "expected", "lr_times_curvature"),
    [(0.01, "slow_progress", 0.04), (0.48, "oscillations", 1.92), (0.51, "instability", 2.04)],
)
def test_lecture_002_learning_rates(lr, expected, lr_times_curvature):
    history = _lecture_history(lr)
    findings = dg.diagnose(history, gradient_descent=True)
    assert [f.problem for f in findings] == [expected]
    (finding,) = findings
    assert finding.confidence >= 0.8 and finding.level == "high"
    # the descent ratio recovers lr * lambda = 4 lr exactly on a quadratic
    assert finding.evidence["lr_times_curvature_along_gradient"] == pytest.approx(
        lr_times_curvature, abs=1e-3
    )
    assert "Congeduti" in finding.reference and ".txt" not in finding.reference
    assert finding.workaround.startswith(
        {
            "slow_progress": "increase the learning rate",
            "oscillations": "decrease the learning rate",
            "instability": "decrease the learning rate",
        }[expected]
    )


def test_lecture_002_optimal_learning_rate_gives_no_finding():
    history = _lecture_history(0.25)  # 1 / lambda: w = 0 after one step
    assert dg.diagnose(history, gradient_descent=True) == ()
    assert dg.diagnose(history) == ()


def test_lecture_002_with_sharpness_reports_lambda_max_against_two_over_lr():
    cb = curvature.sharpness_callback(_two_w_squared, jnp.zeros((1,)), every=5, learning_rate=0.51)
    history = _lecture_history(0.51, steps=20, callbacks=[cb])
    (finding,) = dg.diagnose(history, gradient_descent=True)
    assert finding.problem == "instability"
    assert finding.evidence["sharpness"] == pytest.approx(4.0, rel=1e-4)
    assert finding.evidence["2/learning_rate"] == pytest.approx(2 / 0.51, rel=1e-4)
    assert finding.evidence["lr_times_sharpness"] == pytest.approx(2.04, rel=1e-4)
    assert "exceeds 2/lr" in finding.summary


def test_diagnose_without_the_descent_ratio_reads_the_curve():
    # Without gradient_descent=True only the loss shape counts: 0.51 still rises.
    assert [f.problem for f in dg.diagnose(_lecture_history(0.51))] == ["instability"]
    # A slow, linear curve (few steps at 0.01): the last third falls as fast as the first.
    (finding,) = dg.diagnose(_lecture_history(0.01, steps=6))
    assert finding.problem == "slow_progress" and finding.level == "medium"
    assert finding.evidence["last_third_over_first_third_decrease"] > 0.5


# --- diagnose: real networks on digits ----------------------------------------------------


def _digits_mlp():
    ds = jol.datasets.digits()

    def loss_fn(p, b):
        h = jnp.tanh(b.x @ p["w1"] + p["b1"][None, :])
        logits = h @ p["w2"] + p["b2"][None, :]
        return optax.softmax_cross_entropy_with_integer_labels(logits, b.y).mean()

    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "w1": jax.random.normal(k1, (64, 16)) / 8,
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 10)) / 4,
        "b2": jnp.zeros(10),
    }
    return ds, loss_fn, params


def test_minibatch_sgd_on_digits_fluctuates_full_batch_is_healthy():
    ds, loss_fn, params = _digits_mlp()
    kwargs = {"steps": 200, "key": jax.random.key(1), "log_every": 2, "progress": False}
    sgd = jol.train(loss_fn, params, optax.sgd(0.5), ds.train, batch_size=8, **kwargs)
    findings = dg.diagnose(sgd.history, learning_rate=0.5)
    assert [f.problem for f in findings] == ["fluctuations"]
    assert findings[0].evidence["fraction_increasing"] >= 0.25
    assert findings[0].evidence["noise_over_trend"] >= 2
    assert "iterate averaging" in findings[0].workaround

    full = jol.train(loss_fn, params, optax.sgd(0.5), ds.train, batch_size=None, **kwargs)
    assert full.history["train_loss"][-1] < 0.2
    assert dg.diagnose(full.history, learning_rate=0.5) == ()


def test_plateau_near_the_saddle_of_lecture_001_network():
    # L = (1 - w1 w2)^2 from next to its saddle at the origin: flat, then a drop.
    f = jol.landscapes.two_layer_linear()
    result = jol.train(
        f,
        jnp.array([1e-5, 1e-5]),
        optax.sgd(0.1),
        jnp.zeros((1,)),
        steps=80,
        key=None,
        progress=False,
    )
    (finding,) = dg.diagnose(result.history)
    assert finding.problem == "plateau" and finding.level == "high"
    assert finding.evidence["start_step"] == 0
    assert finding.evidence["loss"] == pytest.approx(1.0, abs=1e-6)
    assert finding.evidence["grad_norm"] < 0.01 * finding.evidence["max_grad_norm"]
    assert "then it drops" in finding.summary


def test_overfitting_and_divergence_from_arrays():
    t = np.arange(100.0)
    train = np.exp(-t / 30)
    val = 0.5 + 0.002 * (t - 40) ** 2 / 40 + np.exp(-t / 30) / 2
    (finding,) = dg.diagnose({"train_loss": train, "val_loss": val})
    assert finding.problem == "overfitting"
    assert abs(finding.evidence["best_val_step"] - np.argmin(val)) <= 3
    assert finding.evidence["val_rise"] > 0.05
    assert finding.evidence["train_drop_since_best"] > 0.5

    loss = np.array([1.0, 0.9, 0.8, 5.0, np.inf, np.nan])
    (finding,) = dg.diagnose({"train_loss": loss, "step": np.arange(6) * 10})
    assert finding.problem == "instability" and finding.confidence == 0.99
    assert finding.evidence["diverged_at_step"] == 40


def test_diagnose_errors_name_the_argument():
    with pytest.raises(ValueError, match="`train_loss`"):
        dg.diagnose({"val_loss": np.ones(5)})
    with pytest.raises(ValueError, match=r"`history\['grad_norm'\]`"):
        dg.diagnose({"train_loss": np.ones(5), "grad_norm": np.ones(4)})


# --- unit health and symmetry --------------------------------------------------------------


class _MLP(nnx.Module):
    def __init__(self, act, *, rngs):
        self.act = act
        self.hidden1 = nnx.Linear(64, 32, rngs=rngs)
        self.hidden2 = nnx.Linear(32, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        h = self.act(self.hidden1(x))
        self.sow(nnx.Intermediate, "h1", h)
        h = self.act(self.hidden2(h))
        return self.out(h)


def test_relu_net_with_large_negative_bias_has_dead_units():
    x = jnp.asarray(jol.datasets.digits().validation.x)
    model = _MLP(nnx.relu, rngs=nnx.Rngs(0))
    healthy = dg.unit_health(dg.record_activations(model, x), preactivation=True)
    assert set(healthy.dead_fraction) == {"hidden1", "hidden2", "out", "h1"}
    assert healthy.dead_fraction["hidden1"] < 0.25  # blank pixels leave a few units dead

    model.hidden1.bias[...] = jnp.full(32, -1.0).at[::2].set(-50.0)  # half the units
    acts = dg.record_activations(model, x)
    assert acts["hidden1"].shape == (x.shape[0], 32)
    health = dg.unit_health(acts, {"hidden1": "relu", "hidden2": "relu"}, preactivation=True)
    layer = health.layers[0]
    assert layer.name == "hidden1" and layer.dead_fraction >= 0.5
    assert set(range(0, 32, 2)) <= set(layer.dead_units)
    assert not health.healthy
    # the sown post-activations h1 = relu(z) say the same
    post = dg.unit_health({"h1": acts["h1"]}, "relu")
    assert post.layers[0].dead_units == layer.dead_units
    assert "dead" in str(health)


def test_tanh_units_saturate_with_large_weights():
    x = jnp.asarray(jol.datasets.digits().validation.x)
    model = _MLP(jnp.tanh, rngs=nnx.Rngs(0))
    kinds = {"hidden1": "tanh", "hidden2": "tanh"}
    before = dg.unit_health(dg.record_activations(model, x), kinds, preactivation=True)
    assert before.saturated_fraction == {"hidden1": 0.0, "hidden2": 0.0}
    model.hidden1.bias[...] = jnp.full(32, 20.0)
    after = dg.unit_health(dg.record_activations(model, x), kinds, preactivation=True)
    assert after.saturated_fraction["hidden1"] == 1.0
    assert after.layers[0].mean_slope < 1e-3
    with pytest.raises(ValueError, match="`activation`"):
        dg.unit_health({"a": np.ones((2, 3))}, "gelu")


def test_all_zero_init_keeps_units_symmetric():
    ds = jol.datasets.digits()

    def loss_fn(p, b):
        h = jax.nn.sigmoid(b.x @ p["w1"] + p["b1"][None, :])
        logits = h @ p["w2"] + p["b2"][None, :]
        return optax.softmax_cross_entropy_with_integer_labels(logits, b.y).mean()

    zeros = {
        "w1": jnp.zeros((64, 8)),
        "b1": jnp.zeros(8),
        "w2": jnp.zeros((8, 10)),
        "b2": jnp.zeros(10),
    }
    result = jol.train(loss_fn, zeros, optax.sgd(1.0), ds.train, steps=20, key=None, progress=False)
    p = result.params
    assert float(jnp.abs(p["w1"]).max()) > 1e-3  # the weights moved, but together
    sym = dg.symmetric_units([(p["w1"], p["b1"]), (p["w2"], p["b2"])])
    assert sym.found
    assert sym.layers[0].groups == (tuple(range(8)),)
    assert sym.layers[0].num_distinct == 1
    assert sym.symmetric_fraction == {0: 1.0}

    model = _MLP(nnx.relu, rngs=nnx.Rngs(0))
    random_init = dg.symmetric_units([model.hidden1, model.hidden2, model.out])
    assert not random_init.found
    assert [layer.num_distinct for layer in random_init.layers] == [32, 32]
    with pytest.raises(ValueError, match=r"`weights\[1\]`"):
        dg.symmetric_units([jnp.zeros((4, 3)), jnp.zeros((5, 2))])


def test_check_grad_catches_wrong_half_precision_gradients():
    x = jnp.linspace(0.5, 2.0, 8).astype(jnp.bfloat16)
    f = lambda p: jnp.sum(p**3)
    for wrong in (lambda p: jnp.zeros_like(p), lambda p: 6 * p**2):  # zero, twice the truth
        assert not jol.diagnostics.check_grad(f, x, grad_fn=wrong).passed
    assert jol.diagnostics.check_grad(f, x, grad_fn=lambda p: 3 * p**2).passed
    assert jol.diagnostics.check_grad(f, x.astype(jnp.float16)).passed  # autodiff


def test_unit_health_counts_nonfinite_units():
    h = jnp.array([[1.0, jnp.nan, 0.5], [0.3, 2.0, jnp.inf]])
    health = jol.diagnostics.unit_health({"h": h})
    assert not health.healthy
    assert health.layers[0].nonfinite_units == (1, 2)
    assert health.nonfinite_fraction == {"h": 2 / 3}
    assert "NON-FINITE" in str(health)
    assert jol.diagnostics.unit_health({"h": jnp.ones((2, 3))}).healthy


def test_sharpness_is_judged_against_the_threshold_of_the_rule():
    """Heavy-ball momentum 0.9 at lr 0.1 is stable up to 38, not 2/lr = 20: a sharpness
    of 30 is instability only for plain gradient descent."""
    steps = np.arange(0, 200, 10)
    history = {
        "step": steps,
        "train_loss": 1.0 / (1.0 + 0.05 * steps),
        "sharpness": np.full(steps.size, 30.0),
        "2/learning_rate": np.full(steps.size, 20.0),
    }
    assert "instability" in [f.problem for f in dg.diagnose(history, gradient_descent=True)]
    momentum = {**history, "stability_threshold": np.full(steps.size, 38.0)}
    assert "instability" not in [f.problem for f in dg.diagnose(momentum)]
    # Adam: the preconditioned sharpness against (2 + 2 b1) / ((1 - b1) lr)
    adam = {**momentum, "preconditioned_sharpness": np.full(steps.size, 50.0)}
    (finding,) = [f for f in dg.diagnose(adam) if f.problem == "instability"]
    assert finding.evidence["preconditioned_sharpness"] == 50.0
    assert "preconditioned sharpness lambda_max(P^-1 H) = 50 exceeds the optimizer's" in (
        finding.summary
    )
