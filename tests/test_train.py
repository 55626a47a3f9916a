"""Tests of jol.train: the loop against hand-written ones, minibatches, freezing, history."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _sweep_helpers import DIGITS, CountCompilations, NNXModel, ParamNorm, init_mlp, mlp_loss
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab.train import minibatch_indices

programs = importlib.import_module("jaxopt_lab._loop._programs")

X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
REGRESSION = {"x": X, "y": X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.1}


def regression_loss(params, batch):
    residual = batch["x"] @ params["w"] + params["b"] - batch["y"]
    return 0.5 * jnp.mean(residual**2)


def quadratic_loss(params, batch):
    """``2 w^2``; ``batch`` is unused (a one-example dummy)."""
    del batch
    return 2.0 * jnp.sum(params["w"] ** 2)


DUMMY = {"z": np.zeros((1, 1), np.float32)}
REG_PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros([])}


def test_full_batch_equals_python_loop():
    optimizer = optax.sgd(0.1, momentum=0.9)
    result = jol.train(
        regression_loss,
        REG_PARAMS,
        optimizer,
        REGRESSION,
        steps=12,
        key=None,
        log_every=3,
        progress=False,
    )
    h = result.history
    np.testing.assert_array_equal(h["step"], [0, 3, 6, 9, 12])
    params, state = REG_PARAMS, optimizer.init(REG_PARAMS)
    for t in range(13):
        loss, grads = jax.value_and_grad(regression_loss)(params, REGRESSION)
        if t % 3 == 0:
            row = t // 3
            np.testing.assert_allclose(h["train_loss"][row], loss, rtol=1e-6)
            if t < 12:
                np.testing.assert_allclose(h["batch_loss"][row], loss, rtol=1e-6)
                np.testing.assert_allclose(h["grad_norm"][row], optax.tree.norm(grads), rtol=1e-6)
        if t < 12:
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
    assert np.isnan(h["grad_norm"][-1]) and np.isnan(h["batch_loss"][-1])  # no 13th update
    assert not h["nonfinite"].any() and not h["diverged"].any()
    assert "val_loss" not in h and "learning_rate" not in h
    for name in params:
        np.testing.assert_allclose(result.params[name], params[name], rtol=1e-6)
    np.testing.assert_array_equal(REG_PARAMS["w"], 0.0)  # the caller's params are intact


def test_minibatch_indices_are_epochs_of_permutations():
    key = jax.random.key(7)
    idx = np.asarray(minibatch_indices(key, 0, 10, 10, 4))  # 40 positions: 4 epochs
    assert idx.shape == (10, 4)
    epochs = idx.reshape(4, 10)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(10))
    assert len({tuple(e) for e in epochs}) == 4  # reshuffled every epoch
    np.testing.assert_array_equal(minibatch_indices(key, 3, 5, 10, 4), idx[3:8])
    np.testing.assert_array_equal(minibatch_indices(key, 0, 10, 10, 4), idx)
    assert not np.array_equal(minibatch_indices(jax.random.key(8), 0, 10, 10, 4), idx)


def test_train_uses_every_example_once_per_epoch():
    def count_loss(params, batch):  # d/dp_i = number of times example i is in the batch
        return jnp.sum(params[batch["i"]])

    data = {"i": np.arange(10)}
    kwargs = {"batch_size": 4, "key": jax.random.key(0), "progress": False}
    optimizer = optax.sgd(1.0)
    two_epochs = jol.train(count_loss, jnp.zeros(10), optimizer, data, steps=5, **kwargs)
    np.testing.assert_array_equal(two_epochs.params, -2.0)
    partial = jol.train(count_loss, jnp.zeros(10), optimizer, data, steps=2, **kwargs)
    np.testing.assert_array_equal(np.sort(np.asarray(partial.params)), [-1.0] * 8 + [0.0] * 2)
    expected = np.zeros(10)
    np.add.at(expected, np.asarray(minibatch_indices(kwargs["key"], 0, 2, 10, 4)).ravel(), -1)
    np.testing.assert_array_equal(partial.params, expected)


def test_same_key_same_run_compiled_once():
    optimizer = jol.momentum(0.1, 0.9)
    kwargs = {
        "steps": 20,
        "batch_size": 32,
        "log_every": 5,
        "progress": False,
        "chunk_size": 5,
        "eval_data": DIGITS.validation,
    }
    params = init_mlp(jax.random.PRNGKey(0))
    with CountCompilations("jit(_train_run)") as count:
        first = jol.train(
            mlp_loss, params, optimizer, DIGITS.train, key=jax.random.key(1), **kwargs
        )
    assert count.value == 1  # 5 chunks, one compilation
    with CountCompilations("jit(_train_run)") as count:  # a new optimizer, the same rule
        second = jol.train(
            mlp_loss, params, jol.momentum(0.1, 0.9), DIGITS.train, key=jax.random.key(1), **kwargs
        )
    assert count.value == 0  # the program is found again
    other = jol.train(mlp_loss, params, optimizer, DIGITS.train, key=jax.random.key(2), **kwargs)
    for name in first.history:
        np.testing.assert_array_equal(first.history[name], second.history[name])
    assert not np.array_equal(first.history["train_loss"], other.history["train_loss"])
    assert first.history["train_loss"][-1] < 0.7 * first.history["train_loss"][0]
    assert first.history["val_loss"][-1] < 0.7 * first.history["val_loss"][0]


def test_nonfinite_run_is_frozen_at_last_finite_values():
    # w <- w - 100 * 4 w = -399 w: the loss 2 w^2 overflows float32 at w_8 = 399^8
    params = {"w": jnp.ones(1)}
    result = jol.train(
        quadratic_loss, params, optax.sgd(100.0), DUMMY, steps=12, key=None, progress=False
    )
    np.testing.assert_allclose(result.params["w"], [399.0**8], rtol=1e-5)
    h = result.history
    np.testing.assert_array_equal(h["nonfinite"], np.arange(13) >= 8)
    np.testing.assert_array_equal(h["diverged"], h["nonfinite"])
    assert np.isfinite(h["train_loss"][:8]).all() and np.isinf(h["train_loss"][8:]).all()
    assert np.isnan(h["grad_norm"][8:]).sum() == 1  # frozen steps still report a gradient


def test_a_run_going_nonfinite_between_logged_steps_is_put_back():
    # the loss w has gradient 1: sgd(1e38) takes w to 1 - 1e38, -2e38, -3e38, then -inf,
    # inside the second block of 2 steps; the run is put back to the start of that block
    result = jol.train(
        lambda p, b: jnp.sum(p["w"]) + 0.0 * jnp.sum(b["z"]),
        {"w": jnp.ones(1)},
        optax.sgd(1e38),
        DUMMY,
        steps=8,
        key=None,
        log_every=2,
        progress=False,
    )
    w2 = np.float32(1) - np.float32(2e38)
    np.testing.assert_allclose(result.params["w"], [w2], rtol=1e-6)
    h = result.history
    np.testing.assert_array_equal(h["nonfinite"], [False, False, True, True, True])
    np.testing.assert_allclose(h["train_loss"][1:], w2, rtol=1e-6)  # finite: frozen there
    assert result.diverged


def test_divergence_factor_freezes_a_growing_run():
    # w <- w - 0.6 * 4 w = -1.4 w: the loss grows 1.96x per step, > 10x at step 4
    params = {"w": jnp.ones(1)}
    result = jol.train(
        quadratic_loss,
        params,
        optax.sgd(0.6),
        DUMMY,
        steps=8,
        key=None,
        divergence_factor=10.0,
        progress=False,
    )
    np.testing.assert_allclose(result.params["w"], [1.4**4], rtol=1e-6)
    np.testing.assert_array_equal(result.history["diverged"], np.arange(9) >= 4)
    assert not result.history["nonfinite"].any()


def test_divergence_factor_bounds_the_size_of_a_negative_initial_loss():
    # w^2 - 4 starts at -3 and descends to -4: never diverged, although -3 > 10 * -3
    result = jol.train(
        lambda p, b: p["w"] ** 2 - 4.0 + 0.0 * jnp.sum(b["z"]),
        {"w": jnp.ones(())},
        optax.sgd(0.1),
        DUMMY,
        steps=10,
        key=None,
        divergence_factor=10.0,
        progress=False,
    )
    assert not result.history["diverged"].any()
    np.testing.assert_allclose(result.params["w"], 0.8**10, rtol=1e-5)


def test_schedule_and_callbacks_in_history():
    schedule = optax.linear_schedule(0.1, 0.01, 10)
    kwargs = {"steps": 10, "key": None, "progress": False}
    params = {"w": jnp.array([1.0, -2.0])}
    result = jol.train(
        quadratic_loss,
        params,
        optax.sgd(schedule),
        DUMMY,
        schedule=schedule,
        callbacks=(ParamNorm(every=2),),
        **kwargs,
    )
    h = result.history
    np.testing.assert_allclose(h["learning_rate"], schedule(np.arange(11)), rtol=1e-6)
    w = np.array([1.0, -2.0], np.float32)
    for t in range(11):
        if t % 2 == 0:
            np.testing.assert_allclose(h["param_norm"][t], np.linalg.norm(w), rtol=1e-6)
            assert h["evaluations"][t] == t // 2 + 1
        else:
            assert np.isnan(h["param_norm"][t]) and np.isnan(h["evaluations"][t])
        w = w - np.float32(schedule(t)) * 4 * w
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    h = jol.train(quadratic_loss, params, injected, DUMMY, **kwargs).history
    np.testing.assert_allclose(h["learning_rate"][:10], schedule(np.arange(10)), rtol=1e-6)

    class Clash(ParamNorm):
        def __call__(self, step, params, state):
            return state, {"grad_norm": jnp.zeros([])}

    with pytest.raises(ValueError, match=r"`callbacks`.*grad_norm"):
        jol.train(quadratic_loss, params, optax.sgd(0.1), DUMMY, callbacks=(Clash(1),), **kwargs)


def test_nnx_model_trained():
    model = NNXModel(nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def loss_fn(state, batch):
        logits = nnx.merge(graphdef, state)(batch.x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()

    result = jol.train(
        loss_fn,
        state,
        jol.momentum(0.3, 0.9),
        DIGITS.train,
        steps=40,
        batch_size=64,
        key=jax.random.key(0),
        log_every=20,
        progress=False,
    )
    assert result.history["train_loss"][-1] < 0.5 * result.history["train_loss"][0]
    trained = nnx.merge(graphdef, result.params)
    accuracy = (np.argmax(trained(DIGITS.validation.x), axis=1) == DIGITS.validation.y).mean()
    assert accuracy > 0.7
    before = (np.argmax(model(DIGITS.validation.x), axis=1) == DIGITS.validation.y).mean()
    assert before < 0.3  # the original module is untouched


def test_checkpoint_resumes_after_interruption(tmp_path, monkeypatch):
    optimizer = optax.sgd(0.05, momentum=0.5)
    kwargs = {
        "steps": 20,
        "batch_size": 4,
        "key": jax.random.key(3),
        "log_every": 5,
        "chunk_size": 5,
        "progress": False,
    }
    full = jol.train(regression_loss, REG_PARAMS, optimizer, REGRESSION, **kwargs)

    calls = []
    interrupt_at = [3]
    chunk = programs.train_run

    def interrupted(*args):
        calls.append(1)
        if len(calls) == interrupt_at[0]:
            raise KeyboardInterrupt
        return chunk(*args)

    interrupted.text_hash = chunk.text_hash  # what the checkpoint fingerprints
    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(programs, "train_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jol.train(regression_loss, REG_PARAMS, optimizer, REGRESSION, checkpoint_dir=ckpt, **kwargs)
    calls.clear()
    interrupt_at[0] = None
    resumed = jol.train(
        regression_loss, REG_PARAMS, optimizer, REGRESSION, checkpoint_dir=ckpt, **kwargs
    )
    assert len(calls) == 3  # 5 chunks (steps 0..20), 2 done before the interruption
    for name in full.history:
        np.testing.assert_array_equal(resumed.history[name], full.history[name], err_msg=name)
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name])
    with pytest.raises(ValueError, match=r"`checkpoint_dir`.*differ in: program"):
        jol.train(
            regression_loss,
            REG_PARAMS,
            optax.sgd(0.06, momentum=0.5),
            REGRESSION,
            checkpoint_dir=ckpt,
            **kwargs,
        )
    with pytest.raises(ValueError, match=r"`checkpoint_dir`.*differ in:.*spec"):
        jol.train(
            regression_loss,
            REG_PARAMS,
            optimizer,
            REGRESSION,
            checkpoint_dir=ckpt,
            **{**kwargs, "steps": 25},
        )


def test_progress_bar(capsys):
    jol.train(regression_loss, REG_PARAMS, optax.sgd(0.1), REGRESSION, steps=4, key=None)
    assert "train" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 21}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"data": {"x": X, "y": X[:-1, 0]}}, "data"),
        ({"data": {}}, "data"),
        ({"eval_data": {"x": X[:5], "y": X[:4, 0]}}, "eval_data"),
        ({"log_every": 3}, "log_every"),
        ({"key": None}, "key"),
        ({"monitor_size": 0}, "monitor_size"),
        ({"divergence_factor": -1.0}, "divergence_factor"),
        ({"callbacks": (ParamNorm(every=0),)}, "callbacks"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments_name_the_argument(change, argument):
    kwargs = {
        "data": REGRESSION,
        "steps": 10,
        "batch_size": 4,
        "key": jax.random.key(0),
        "progress": False,
        **change,
    }
    data = kwargs.pop("data")
    with pytest.raises(ValueError, match=f"`{argument}"):
        jol.train(regression_loss, REG_PARAMS, optax.sgd(0.1), data, **kwargs)
    with pytest.raises(TypeError, match="`optimizer`"):
        jol.train(regression_loss, REG_PARAMS, "sgd", REGRESSION, steps=1, key=None)


def _logistic_problem():
    """Binary logistic regression (digit 0 against the rest), L2-regularised: one optimum."""
    x = DIGITS.train.x[:400]
    data = {"x": x, "y": (DIGITS.train.y[:400] == 0).astype(np.float32)}

    def loss(params, batch):
        logits = batch["x"] @ params["w"] + params["b"]
        nll = optax.sigmoid_binary_cross_entropy(logits, batch["y"]).mean()
        return nll + 0.5e-2 * jnp.sum(params["w"] ** 2)

    return loss, {"w": jnp.zeros(64), "b": jnp.zeros(())}, data


def test_lbfgs_with_its_line_search_reaches_newtons_optimum():
    loss, params, data = _logistic_problem()
    kwargs = {"key": None, "progress": False}
    newton = jol.train(loss, params, jol.newton(1.0), data, steps=12, **kwargs)
    lbfgs = jol.train(loss, params, optax.lbfgs(), data, steps=60, **kwargs)
    assert not newton.diverged and not lbfgs.diverged
    gradient = optax.tree.norm(jax.grad(loss)(newton.params, data))
    assert gradient < 1e-5  # Newton converged quadratically
    np.testing.assert_allclose(
        lbfgs.history["train_loss"][-1], newton.history["train_loss"][-1], rtol=1e-4
    )
    for name in ("w", "b"):
        np.testing.assert_allclose(lbfgs.params[name], newton.params[name], atol=1e-3, rtol=1e-3)
    assert lbfgs.history["train_loss"][5] > lbfgs.history["train_loss"][-1]


def test_reduce_on_plateau_lowers_its_scale_on_a_plateau():
    # sgd(1.0) on w^2 flips the sign of w at every step: the loss is flat until the scale
    # drops, after which the same rule converges
    optimizer = optax.chain(
        optax.sgd(0.5), optax.contrib.reduce_on_plateau(factor=0.5, patience=3, cooldown=0)
    )
    # optax's reduce_on_plateau multiplies its int32 count by a float32 (implicit
    # promotion, which the tests' strict mode refuses): run it under JAX's default
    with jax.numpy_dtype_promotion("standard"):
        result = jol.train(
            lambda p, b: jnp.sum(p**2) + 0.0 * jnp.sum(b),
            jnp.ones(2),
            optax.chain(optax.scale(2.0), optimizer),
            np.zeros((1, 1), np.float32),
            steps=12,
            key=None,
            progress=False,
        )
    scale = float(result.opt_state[1][1].scale)
    assert scale < 1.0
    h = result.history["train_loss"]
    np.testing.assert_allclose(h[:4], 2.0)  # the plateau
    assert h[-1] < 1e-3


def test_throw_raises_after_the_loop_and_flags_otherwise():
    kwargs = {"steps": 12, "key": None, "progress": False}
    params = {"w": jnp.ones(1)}
    flagged = jol.train(quadratic_loss, params, optax.sgd(100.0), DUMMY, **kwargs)
    assert flagged.diverged and flagged.history["nonfinite"][-1]
    with pytest.raises(jol.DivergedError, match=r"`train` \(throw=True\).*the run by step 8"):
        jol.train(quadratic_loss, params, optax.sgd(100.0), DUMMY, throw=True, **kwargs)
    assert issubclass(jol.DivergedError, FloatingPointError)
    fine = jol.train(quadratic_loss, params, optax.sgd(0.1), DUMMY, throw=True, **kwargs)
    assert not fine.diverged


def test_callbacks_due_between_logged_steps_keep_their_state():
    # every=3, log_every=2: evaluated at 0, 3, 6, 9, 12; rows at 0, 2, ..., 12 keep 0, 6, 12
    result = jol.train(
        quadratic_loss,
        {"w": jnp.array([1.0, -2.0])},
        optax.sgd(0.1),
        DUMMY,
        steps=12,
        key=None,
        log_every=2,
        callbacks=(ParamNorm(every=3),),
        progress=False,
    )
    h = result.history
    np.testing.assert_array_equal(h["evaluations"], [1, np.nan, np.nan, 3, np.nan, np.nan, 5])
    w = np.array([1.0, -2.0], np.float32) * np.float32(0.6) ** 6  # w <- w - 0.1 * 4 w
    np.testing.assert_allclose(h["param_norm"][3], np.linalg.norm(w), rtol=1e-5)


def test_numpy_integers_are_counts():
    """steps, batch_size, log_every, chunk_size, monitor_size may be NumPy integers."""
    as_ints = jol.train(
        regression_loss,
        REG_PARAMS,
        optax.sgd(0.1),
        REGRESSION,
        steps=4,
        batch_size=5,
        log_every=2,
        chunk_size=2,
        monitor_size=10,
        key=jax.random.key(0),
        progress=False,
    )
    as_numpy = jol.train(
        regression_loss,
        REG_PARAMS,
        optax.sgd(0.1),
        REGRESSION,
        steps=np.int64(4),
        batch_size=np.int32(5),
        log_every=np.int64(2),
        chunk_size=np.array(2),
        monitor_size=np.int16(10),
        key=jax.random.key(0),
        progress=False,
    )
    np.testing.assert_array_equal(as_numpy.history["train_loss"], as_ints.history["train_loss"])
    np.testing.assert_array_equal(as_numpy.params["w"], as_ints.params["w"])
