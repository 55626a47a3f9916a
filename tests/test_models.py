"""The nets users train: an NNX CNN with BatchNorm and Dropout, a Linen CNN with batch_stats.

Both through ``jol.train`` and ``jol.sweep`` (one engine), then into the curvature tools.
"""

from __future__ import annotations

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _sweep_helpers import DIGITS
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab.sweep import seed_keys

TRAIN = jax.tree.map(lambda a: a[:512], DIGITS.train)  # small: the suite runs on 2 cores
VALIDATION = jax.tree.map(lambda a: a[:256], DIGITS.validation)
SETTINGS = {"steps": 30, "batch_size": 32, "log_every": 10, "progress": False}
SUB = jax.tree.map(lambda a: a[:32], TRAIN)  # the data of the curvature checks
# The tests that share this module's trained CNNs (fixtures built once per worker).
SHARED = pytest.mark.xdist_group("test_models_cnn")


class CNN(nnx.Module):
    """Conv -> BatchNorm -> relu -> Dropout(0.2) -> Linear, on the 8x8 digits."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(4 * 64, 10, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x.reshape(-1, 8, 8, 1))))
        return self.out(self.drop(h).reshape(x.shape[0], -1))


def cnn_loss(model, batch):
    return optax.softmax_cross_entropy_with_integer_labels(model(batch.x), batch.y).mean()


def init_cnn(key):
    return CNN(nnx.Rngs(key))


@pytest.fixture(scope="module")
def trained_cnn() -> jol.TrainResult:
    return jol.train(
        cnn_loss,
        CNN(nnx.Rngs(0)),
        jol.momentum(0.1, 0.9),
        TRAIN,
        key=jax.random.key(0),
        eval_data=VALIDATION,
        **SETTINGS,
    )


class Moments:
    """A callback that reads the optimizer state, the model state and the model."""

    every = 10

    def init(self, params):
        del params
        return None

    def __call__(self, step, params, state, *, opt_state, model_state, model):
        nu = optax.tree.get(opt_state, "nu")
        return state, {
            "second_moment": optax.tree.norm(nu),
            "bn_mean": jnp.sum(jnp.abs(model_state["bn"]["mean"][...])),
            "eval_loss": cnn_loss(model, VALIDATION),
        }


@pytest.fixture(scope="module")
def adam_run() -> tuple[optax.GradientTransformation, jol.TrainResult]:
    """Adam on the CNN, with Moments and the sharpness callback (plain and preconditioned
    sharpness on SUB at steps 0, 10, 20 and 30): one compiled run for two tests."""
    tx = jol.adam(1e-2)  # = optax.adam, whose `b1**count` needs implicit promotion
    sharpness = jol.curvature.sharpness_callback(cnn_loss, SUB, every=10, preconditioned=True)
    result = jol.train(
        cnn_loss,
        CNN(nnx.Rngs(0)),
        tx,
        TRAIN,
        key=jax.random.key(0),
        callbacks=(Moments(), sharpness),
        eval_data=VALIDATION,
        **SETTINGS,
    )
    return tx, result


@SHARED
def test_nnx_cnn_trains_with_batchnorm_and_dropout(trained_cnn):
    h = trained_cnn.history
    assert h["train_loss"][-1] < 0.6 * h["train_loss"][0]
    assert not trained_cnn.diverged
    model = trained_cnn.model
    assert isinstance(model, CNN)
    assert model.bn.use_running_average and model.drop.deterministic  # evaluation mode
    fresh = CNN(nnx.Rngs(0))
    assert not np.allclose(model.bn.mean[...], fresh.bn.mean[...])  # statistics updated
    assert not np.allclose(model.bn.var[...], fresh.bn.var[...])
    np.testing.assert_array_equal(fresh.bn.mean[...], 0.0)  # the caller's module: untouched
    # Dropout's counter advanced once per training step (eval steps draw nothing)
    assert int(trained_cnn.state["drop"]["rngs"]["count"][...]) == SETTINGS["steps"]
    assert set(trained_cnn.params) == {"conv", "bn", "out"}  # nnx.Param state only
    assert "mean" not in trained_cnn.params["bn"]

    # val_loss is the evaluation-mode loss: running averages, no dropout
    np.testing.assert_allclose(h["val_loss"][-1], cnn_loss(model, VALIDATION), rtol=1e-5)
    training_mode = nnx.view(model, deterministic=False, use_running_average=False)
    assert abs(float(cnn_loss(training_mode, VALIDATION)) - h["val_loss"][-1]) > 1e-3


def test_nnx_dropout_draws_a_new_mask_every_step_and_per_stream():
    """With a zero learning rate only Dropout changes the training-mode loss (BatchNorm
    uses the statistics of the batch, the same full batch at every step)."""

    def batch_losses(dropout_seed):
        model = CNN(nnx.Rngs(params=0, dropout=dropout_seed))  # the same weights
        result = jol.train(
            cnn_loss, model, optax.sgd(0.0), TRAIN, key=None, steps=3, progress=False
        )
        return result.history

    first, other = batch_losses(1), batch_losses(2)
    # evaluation mode draws no mask (BatchNorm, before Dropout, sees the same batches)
    np.testing.assert_array_equal(first["train_loss"], other["train_loss"])
    steps = first["batch_loss"][:3]
    assert len(set(steps.tolist())) == 3  # a new mask at every step
    assert not np.any(steps == other["batch_loss"][:3])  # another stream, other masks


@SHARED
def test_nnx_cnn_sweep_equals_train_run_by_run(trained_cnn):
    result = jol.sweep(
        cnn_loss,
        init_cnn,
        lambda h: jol.momentum(h["learning_rate"], 0.9),
        {"learning_rate": [0.1, 0.03]},
        TRAIN,
        seeds=2,
        eval_data=VALIDATION,
        **SETTINGS,
    )
    assert result.num_runs == 4 and not result.diverged.any()
    for run in range(4):
        init_key, data_key = seed_keys(int(result.seeds[run]))
        lr = float(result.hparams["learning_rate"][run])
        alone = jol.train(
            cnn_loss,
            init_cnn(init_key),
            jol.momentum(lr, 0.9),
            TRAIN,
            key=data_key,
            eval_data=VALIDATION,
            **SETTINGS,
        )
        for name in ("train_loss", "val_loss", "batch_loss", "grad_norm"):
            np.testing.assert_allclose(
                result.curves[name][run], alone.history[name], rtol=1e-5, err_msg=f"{run} {name}"
            )
        np.testing.assert_allclose(
            result.model(run).bn.mean[...], alone.model.bn.mean[...], rtol=1e-4, atol=1e-6
        )
    # seeds 0 and 1 start from different weights and different dropout streams
    assert result.curves["train_loss"][0, 0] != result.curves["train_loss"][1, 0]
    keys = jax.random.key_data(result.state["drop"]["rngs"]["key"][...])
    assert not np.array_equal(keys[0], keys[1]) and np.array_equal(keys[0], keys[2])
    np.testing.assert_array_equal(result.state["drop"]["rngs"]["count"][...], 30)
    with pytest.raises(ValueError, match="`run`"):
        result.model(4)


@SHARED
def test_analyze_the_trained_module(trained_cnn):
    report = jol.curvature.analyze(cnn_loss, trained_cnn.model, VALIDATION, method="lanczos", k=2)
    assert report.converged and report.lambda_max > 0
    assert report.size == sum(x.size for x in jax.tree.leaves(trained_cnn.params))


@SHARED
def test_callbacks_see_the_optimizer_and_model_state(adam_run):
    _, result = adam_run
    h = result.history
    assert h["second_moment"][0] == 0 and h["second_moment"][-1] > 0  # Adam's nu grows
    assert h["bn_mean"][0] == 0 and h["bn_mean"][-1] > 0
    np.testing.assert_allclose(h["eval_loss"], h["val_loss"], rtol=1e-5)
    # the sharpness callback's value at step 0 is the function's at the initial model
    start = jol.curvature.eigenvalues(cnn_loss, CNN(nnx.Rngs(0)), SUB, tol=1e-3)
    np.testing.assert_allclose(h["sharpness"][0], start.values[0], rtol=1e-2)


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Conv(4, (3, 3))(x.reshape(-1, 8, 8, 1))
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        h = nn.Dropout(0.2, deterministic=not train)(h)
        return nn.Dense(10)(h.reshape(x.shape[0], -1))


LINEN = LinenCNN()


def linen_init(key):
    variables = LINEN.init(key, TRAIN.x[:1], train=False)
    return variables["params"], {"batch_stats": variables["batch_stats"]}


def linen_loss(params, state, batch, key):
    """``key`` is None for evaluation: running averages, no dropout, state unchanged."""
    if key is None:
        logits = LINEN.apply({"params": params, **state}, batch.x, train=False)
        new_state = state
    else:
        logits, new_state = LINEN.apply(
            {"params": params, **state},
            batch.x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
    return loss, new_state


def test_linen_cnn_with_batch_stats_trains_and_sweeps():
    init_key, data_key = seed_keys(0)
    params, state = linen_init(init_key)
    alone = jol.train(
        linen_loss,
        params,
        jol.momentum(0.1, 0.9),
        TRAIN,
        state=state,
        key=data_key,
        eval_data=VALIDATION,
        **SETTINGS,
    )
    h = alone.history
    assert h["train_loss"][-1] < 0.6 * h["train_loss"][0]
    mean = alone.state["batch_stats"]["BatchNorm_0"]["mean"]
    assert np.abs(mean).sum() > 0  # updated by the training steps
    np.testing.assert_allclose(
        h["val_loss"][-1], linen_loss(alone.params, alone.state, VALIDATION, None)[0], rtol=1e-5
    )
    result = jol.sweep(
        linen_loss,
        linen_init,
        lambda hp: jol.momentum(hp["learning_rate"], 0.9),
        {"learning_rate": [0.1, 0.03]},
        TRAIN,
        seeds=1,
        has_state=True,
        eval_data=VALIDATION,
        **SETTINGS,
    )
    for name in ("train_loss", "val_loss", "batch_loss"):
        np.testing.assert_allclose(result.curves[name][0], h[name], rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(
        result.state["batch_stats"]["BatchNorm_0"]["mean"][0], mean, rtol=1e-4, atol=1e-6
    )
    assert result.curves["train_loss"][1, -1] != h["train_loss"][-1]

    with pytest.raises(TypeError, match=r"`loss_fn`.*\(loss, new_state\)"):
        jol.train(
            lambda p, s, b, k: linen_loss(p, s, b, k)[0],
            params,
            optax.sgd(0.1),
            TRAIN,
            state=state,
            key=data_key,
            **SETTINGS,
        )
    with pytest.raises(TypeError, match=r"`init_fn\(key\)` must return `\(params, state\)`"):
        jol.sweep(
            linen_loss,
            lambda k: linen_init(k)[0],
            lambda hp: optax.sgd(hp["learning_rate"]),
            {"learning_rate": [0.1]},
            TRAIN,
            has_state=True,
            **SETTINGS,
        )


def test_nnx_sweep_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    sweep_module = importlib.import_module("jaxopt_lab.sweep._sweep")
    args = (cnn_loss, init_cnn, lambda h: jol.momentum(h["learning_rate"], 0.9))
    kwargs = {"seeds": 2, "max_parallel": 2, "checkpoint_dir": tmp_path, **SETTINGS}
    first = jol.sweep(*args, {"learning_rate": [0.1]}, TRAIN, **kwargs)
    waves = []
    run_wave = sweep_module._run_wave
    monkeypatch.setattr(sweep_module, "_run_wave", lambda *a: waves.append(1) or run_wave(*a))
    again = jol.sweep(*args, {"learning_rate": [0.1]}, TRAIN, **kwargs)
    assert not waves  # every chunk loaded: RNG keys, BatchNorm statistics and all
    np.testing.assert_array_equal(again.curves["train_loss"], first.curves["train_loss"])
    np.testing.assert_array_equal(again.model(1).bn.var[...], first.model(1).bn.var[...])
    np.testing.assert_array_equal(
        jax.random.key_data(again.state["drop"]["rngs"]["key"][...]),
        jax.random.key_data(first.state["drop"]["rngs"]["key"][...]),
    )


def test_an_nnx_state_with_rng_counters_is_refused_by_name():
    _, state = nnx.split(CNN(nnx.Rngs(0)))  # the README's old pattern, with Dropout
    with pytest.raises(TypeError, match=r"`params` has a leaf .*uint32.*pass the module itself"):
        jol.train(lambda s, b: 0.0, state, optax.sgd(0.1), TRAIN, key=None, steps=1)
    with pytest.raises(ValueError, match="`state`"):
        jol.train(cnn_loss, CNN(nnx.Rngs(0)), optax.sgd(0.1), TRAIN, key=None, steps=1, state={})
    with pytest.raises(ValueError, match="`wrt` = 'nope' selects no variable"):
        jol.train(cnn_loss, CNN(nnx.Rngs(0)), optax.sgd(0.1), TRAIN, key=None, steps=1, wrt="nope")


@SHARED
def test_curvature_of_the_nnx_cnn_per_layer_ggn_and_adam(trained_cnn, adam_run):
    """The engine's NNX CNN: per-layer spectra, its GGN, Adam's preconditioned sharpness."""
    model, sub = trained_cnn.model, SUB
    # bn and conv (<= num_probes parameters) are exact, out is Lanczos and Hutchinson
    blocks = jol.curvature.block_spectra(cnn_loss, model, sub, k=1, num_probes=40, tol=1e-3)
    assert blocks.names == ["bn", "conv", "out"]  # one block per layer (nnx module path)
    assert list(blocks.sizes) == [8, 40, 2570] and bool(blocks.converged.all())
    # the GGN of the CNN: positive semi-definite, its top eigenvalue the Rayleigh quotient
    # of its top eigenvector
    ggn = jol.curvature.ggn_operator(lambda m, x: m(x), "cross_entropy", model, (sub.x, sub.y))
    eig = jol.curvature.eigenvalues(ggn, k=1, which="both", tol=1e-4)
    assert float(eig.values[-1]) >= -1e-4 * float(eig.values[0]) and bool(eig.converged.all())
    # Adam on the CNN: the callback's last preconditioned sharpness (step 30) is the function's
    tx, run = adam_run
    eig = jol.curvature.preconditioned_sharpness(
        cnn_loss, run.model, sub, run.opt_state, optimizer=tx, tol=1e-5
    )
    h = run.history
    assert h["preconditioned_sharpness"][-1] == pytest.approx(float(eig.values[0]), rel=1e-2)
    np.testing.assert_allclose(h["stability_threshold"][-1], 3800.0, rtol=1e-5)
    # the conv bias before BatchNorm: no gradient in training (Adam's P stays near eps
    # there) but curved in evaluation mode. The training-mode Hessian has no curvature
    # there, and the preconditioned sharpness falls by orders of magnitude.
    trained = jol.curvature.preconditioned_sharpness(
        cnn_loss, run.model, sub, run.opt_state, optimizer=tx, batch_norm="batch", tol=1e-4
    )
    assert float(trained.values[0]) < 1e-2 * float(eig.values[0])
    conv_bias = trained.vectors["conv"]["bias"][0]
    assert float(jnp.sum(conv_bias**2)) < 1e-3  # the top eigenvector all but leaves it
    # the loss surface around the trained CNN, along filter-normalized directions
    surface = jol.curvature.loss_surface(cnn_loss, model, sub, grid=(5, 5), span=0.5)
    assert surface.losses.shape == (5, 5) and np.isfinite(surface.losses).all()
    assert surface.center_loss == pytest.approx(surface.losses[2, 2], rel=1e-5)
