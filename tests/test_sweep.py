"""Tests of jol.sweep: equality with train, divergence, devices, resume, tables, errors."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from _sweep_helpers import (
    DIGITS,
    LEARNING_RATES,
    MOMENTA,
    REFERENCE,
    REFERENCE_GRID,
    CountCompilations,
    NNXModel,
    init_mlp,
    make_momentum,
    mlp_loss,
    reference_sweep,
)
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab.sweep import seed_keys

HELPERS = pathlib.Path(__file__).with_name("_sweep_helpers.py")
REPO = HELPERS.parents[1]
sweep_module = importlib.import_module("jaxopt_lab.sweep._sweep")


@pytest.fixture(scope="module")
def reference() -> jol.SweepResult:
    """4 learning rates x 2 momenta x 2 seeds, with a callback (see _sweep_helpers)."""
    return reference_sweep()


def _train_run(result: jol.SweepResult, run: int) -> jol.TrainResult:
    init_key, data_key = seed_keys(int(result.seeds[run]))
    hparams = {k: float(v[run]) for k, v in result.hparams.items()}
    settings = {k: v for k, v in REFERENCE.items() if k != "max_parallel"}
    return jol.train(
        mlp_loss, init_mlp(init_key), make_momentum(hparams), DIGITS.train, key=data_key, **settings
    )


def test_sweep_equals_train_run_for_run(reference):
    assert reference.num_runs == 16
    np.testing.assert_array_equal(reference.seeds, np.tile([0, 1], 8))
    np.testing.assert_array_equal(reference.steps, [0, 10, 20, 30])
    for run in range(0, 16, 2):  # every setting, seed 0
        history = _train_run(reference, run).history
        for name in ("train_loss", "val_loss", "batch_loss", "grad_norm", "param_norm"):
            np.testing.assert_allclose(
                reference.curves[name][run], history[name], rtol=1e-5, err_msg=f"run {run}: {name}"
            )
        np.testing.assert_array_equal(reference.curves["evaluations"][run], [1, 2, 3, 4])
    assert not reference.diverged.any()
    assert np.all(reference.table()["final_train_loss"] < reference.curves["train_loss"][:, 0])


def test_training_program_compiles_once_ahead_of_time():
    """The program compiled in a thread while the runs are set up is the one the chunks
    call: a new sweep compiles it once, not twice, and a repeat not at all."""

    def loss(params, batch):  # a new function: a new program
        return mlp_loss(params, batch)

    settings = {**REFERENCE, "steps": 20, "callbacks": ()}
    with CountCompilations() as count:
        first = jol.sweep(loss, init_mlp, make_momentum, REFERENCE_GRID, DIGITS.train, **settings)
    assert count.value == 1
    with CountCompilations() as count:
        again = jol.sweep(loss, init_mlp, make_momentum, REFERENCE_GRID, DIGITS.train, **settings)
    assert count.value == 0
    np.testing.assert_array_equal(first.curves["train_loss"], again.curves["train_loss"])


def test_programs_found_again_by_what_they_compute():
    """A new but identical lambda, and a grid of 7 runs after one of 8, compile nothing."""
    settings = {**REFERENCE, "steps": 20, "callbacks": (), "max_parallel": None}
    eight = {"learning_rate": LEARNING_RATES, "momentum": MOMENTA}
    seven = {"learning_rate": [0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4], "momentum": [0.9]}

    def run(make_optimizer, grid):
        return jol.sweep(mlp_loss, init_mlp, make_optimizer, grid, DIGITS.train, **settings)

    first = run(lambda h: jol.momentum(h["learning_rate"], h["momentum"]), eight)
    with CountCompilations() as count:
        again = run(lambda h: jol.momentum(h["learning_rate"], h["momentum"]), eight)
        fewer = run(lambda h: jol.momentum(h["learning_rate"], h["momentum"]), seven)
    assert count.all == 0, count.names  # no XLA compilation of any program
    np.testing.assert_array_equal(again.curves["train_loss"], first.curves["train_loss"])
    assert fewer.num_runs == 7 and fewer.curves["train_loss"].shape == (7, 3)  # padding dropped
    for run_ in range(4):  # lr 0.3, 0.1, 0.03, 0.01 with momentum 0.9: runs 1, 3, 5, 7 of 8
        np.testing.assert_allclose(
            fewer.curves["train_loss"][run_], first.curves["train_loss"][2 * run_ + 1], rtol=1e-6
        )
    with CountCompilations() as count:  # a different rule is a different program
        run(lambda h: jol.nesterov(h["learning_rate"], h["momentum"]), eight)
    assert count.value == 1


def test_throw_names_the_diverged_runs():
    grid = {"learning_rate": [0.1, 30.0], "momentum": [0.0]}
    settings = {**REFERENCE, "steps": 20, "callbacks": ()}
    flagged = jol.sweep(mlp_loss, init_mlp, make_momentum, grid, DIGITS.train, **settings)
    np.testing.assert_array_equal(flagged.diverged, [False, True])
    with pytest.raises(
        jol.DivergedError, match=r"1 of 2 run\(s\) diverged.*run 1 \(learning_rate=30, momentum=0"
    ):
        jol.sweep(mlp_loss, init_mlp, make_momentum, grid, DIGITS.train, throw=True, **settings)


def test_seed_keys_match_documented_derivation():
    init_key, data_key = seed_keys(3)
    expected = jax.random.split(jax.random.PRNGKey(3))
    np.testing.assert_array_equal(init_key, expected[0])
    np.testing.assert_array_equal(data_key, expected[1])


def test_table_best_aggregate(reference):
    table = reference.table()
    assert list(table) == [
        "learning_rate",
        "momentum",
        "seed",
        "final_train_loss",
        "final_val_loss",
        "best_val_loss",
        "best_val_step",
        "diverged",
    ]
    val = reference.curves["val_loss"]
    np.testing.assert_array_equal(table["best_val_loss"], val.min(axis=1))
    np.testing.assert_array_equal(table["best_val_step"], 10 * val.argmin(axis=1))
    best = reference.best()
    assert best["best_val_loss"] == table["best_val_loss"].min()
    assert best["run"] == int(np.argmin(table["best_val_loss"]))
    assert reference.best("final_train_loss")["final_train_loss"] == (
        table["final_train_loss"].min()
    )
    agg = reference.aggregate()
    assert agg["learning_rate"].shape == (8,)
    pairs = table["final_train_loss"].reshape(8, 2)
    np.testing.assert_allclose(agg["final_train_loss_mean"], pairs.mean(axis=1))
    np.testing.assert_allclose(agg["final_train_loss_std"], pairs.std(axis=1))
    np.testing.assert_array_equal(agg["num_diverged"], 0)
    rows = reference.select(learning_rate=0.1, momentum=0.9)
    np.testing.assert_array_equal(rows, [6, 7])
    assert reference.format().splitlines()[0].split()[:3] == ["learning_rate", "momentum", "seed"]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            reference.to_pandas()
    else:
        assert reference.to_pandas().shape == (16, 8)


def test_diverging_run_is_flagged_and_others_untouched(reference):
    # the reference grid plus a fifth learning rate: 20 runs, in chunks of 4 as before
    grid = {"learning_rate": [*LEARNING_RATES, 30.0], "momentum": MOMENTA}
    result = reference_sweep(grid)
    np.testing.assert_array_equal(result.diverged, result.hparams["learning_rate"] == 30.0)
    for name, curve in reference.curves.items():  # the other 16 runs: bit for bit
        np.testing.assert_array_equal(result.curves[name][:16], curve, err_msg=name)
    frozen = result.curves["diverged"][16:]
    assert frozen[:, 0].sum() == 0 and frozen[:, -1].all()
    for run in range(16, 20):  # frozen at finite values: the loss stops changing
        assert np.isfinite(result.curves["train_loss"][run]).all()
        first = int(np.argmax(frozen[run - 16]))
        assert len(set(result.curves["train_loss"][run][first:].tolist())) == 1
    assert result.best()["learning_rate"] != 30.0
    everything_diverged = {**result.curves, "diverged": np.ones_like(frozen[:1]).repeat(20, 0)}
    with pytest.raises(ValueError, match="every run diverged"):
        result._replace(curves=everything_diverged).best()


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """Runs the worker once (4 host devices): sharded result, and a killed sweep."""
    tmp = tmp_path_factory.mktemp("worker")
    out, ckpt = tmp / "devices.npz", tmp / "ckpt"
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    proc = subprocess.run(
        [sys.executable, str(HELPERS), str(out), str(ckpt)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]  # SIGKILL, in the middle of a sweep
    return out, ckpt


def test_four_devices_equal_one_device(reference, worker):
    assert jax.device_count() == 1 and reference.num_devices == 1
    with np.load(worker[0]) as sharded:
        assert int(sharded["num_devices"]) == 4
        # compiled once, ahead of time in a second thread, and found by the chunks
        assert int(sharded["chunk_compilations"]) == 1
        for name, curve in reference.curves.items():
            np.testing.assert_array_equal(sharded["curve_" + name], curve, err_msg=name)
        for name, leaf in reference.params.items():
            np.testing.assert_array_equal(sharded["param_" + name], leaf, err_msg=name)


def test_killed_sweep_resumes_to_the_same_table(reference, worker, monkeypatch):
    ckpt = worker[1]  # killed on 4 devices after the first chunk: resumed here on one
    assert sorted(p.name for p in ckpt.iterdir()) == [".lock", "meta.json", "runs_00000"]

    waves = []
    run_wave = sweep_module._run_wave
    monkeypatch.setattr(
        sweep_module, "_run_wave", lambda *a, **k: waves.append(1) or run_wave(*a, **k)
    )
    resumed = reference_sweep(checkpoint_dir=ckpt)
    assert len(waves) == 3  # chunk 0 (runs 0-3) was loaded, chunks 1-3 trained
    expected, got = reference.table(), resumed.table()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for name, curve in reference.curves.items():
        np.testing.assert_array_equal(resumed.curves[name], curve, err_msg=name)

    waves.clear()
    again = reference_sweep(checkpoint_dir=ckpt)  # everything done: nothing trained
    assert not waves
    np.testing.assert_array_equal(again.curves["train_loss"], reference.curves["train_loss"])
    with pytest.raises(ValueError, match=r"`checkpoint_dir`.*differ in:.*spec"):
        reference_sweep(checkpoint_dir=ckpt, steps=50)
    with pytest.raises(ValueError, match=r"`checkpoint_dir`.*differ in:.*grid"):
        reference_sweep({"learning_rate": [0.1], "momentum": MOMENTA}, checkpoint_dir=ckpt)


def test_nnx_model_swept():
    graphdef, _ = nnx.split(NNXModel(nnx.Rngs(0)))

    def init_fn(key):
        return nnx.split(NNXModel(nnx.Rngs(params=key)))[1]

    def loss_fn(state, batch):
        logits = nnx.merge(graphdef, state)(batch.x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()

    result = jol.sweep(
        loss_fn,
        init_fn,
        make_momentum,
        {"learning_rate": [0.3, 0.1], "momentum": [0.9]},
        DIGITS.train,
        steps=20,
        batch_size=32,
        log_every=10,
        seeds=2,
        progress=False,
    )
    losses = result.curves["train_loss"]
    assert losses.shape == (4, 3)
    assert np.all(losses[:, -1] < 0.8 * losses[:, 0])
    assert losses[0, 0] != losses[1, 0]  # different seeds, different initialisations
    model = nnx.merge(graphdef, jax.tree.map(lambda x: x[0], result.params))
    accuracy = (np.argmax(model(DIGITS.validation.x), axis=1) == DIGITS.validation.y).mean()
    assert accuracy > 0.5


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"grid": {"learning_rate": [0.1], "momentum": [0.9], "nesterov": [1.0]}}, "grid"),
        ({"grid": {}}, "grid"),
        ({"grid": {"learning_rate": [], "momentum": [0.9]}}, "grid"),
        ({"grid": {"learning_rate": [0.1]}}, "grid"),  # make_optimizer reads `momentum`
        ({"data": DIGITS.train._replace(y=DIGITS.train.y[:-1])}, "data"),
        ({"eval_data": DIGITS.validation._replace(y=DIGITS.validation.y[:5])}, "eval_data"),
        ({"batch_size": 5000}, "batch_size"),
        ({"steps": 0}, "steps"),
        ({"steps": -3}, "steps"),
        ({"seeds": 0}, "seeds"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"log_every": 7}, "log_every"),
    ],
)
def test_bad_input_names_the_argument(change, argument):
    defaults = {"grid": {"learning_rate": [0.1], "momentum": [0.9]}, "data": DIGITS.train}
    kwargs = {**defaults, "steps": 10, "batch_size": 32, "progress": False, **change}
    grid, data = kwargs.pop("grid"), kwargs.pop("data")
    with pytest.raises(ValueError, match=f"`{argument}"):
        jol.sweep(mlp_loss, init_mlp, make_momentum, grid, data, **kwargs)


def test_what_is_exact_and_what_is_rounding(reference):
    """One program width: bitwise whatever the other runs; other widths: float32 rounding."""
    others = reference_sweep({"learning_rate": [0.3, 0.1, 0.05, 0.02], "momentum": MOMENTA})
    same = others.hparams["learning_rate"] >= np.float32(0.1)  # settings both sweeps hold
    assert same.sum() == 8
    narrow = reference_sweep(max_parallel=1)
    for name, curve in reference.curves.items():
        np.testing.assert_array_equal(others.curves[name][same], curve[same], err_msg=name)
        np.testing.assert_allclose(narrow.curves[name], curve, rtol=1e-5, atol=1e-6, err_msg=name)
    for name, leaf in reference.params.items():
        np.testing.assert_array_equal(others.params[name][same], leaf[same], err_msg=name)
        np.testing.assert_allclose(narrow.params[name], leaf, rtol=1e-5, atol=1e-6, err_msg=name)


def test_numpy_integers_are_counts():
    """steps, batch_size, log_every, seeds and max_parallel may be NumPy integers."""
    x = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(8, 3)
    data = {"x": x, "y": x.sum(1)}

    def run(**counts):
        return jol.sweep(
            lambda p, b: ((b["x"] @ p["w"] - b["y"]) ** 2).mean(),
            lambda k: {"w": jax.random.normal(k, (3,))},
            lambda h: optax.sgd(h["lr"]),
            {"lr": [0.1, 0.2]},
            data,
            progress=False,
            **counts,
        )

    plain = run(steps=4, batch_size=4, log_every=2, seeds=2, max_parallel=2)
    numpy = run(
        steps=np.int64(4),
        batch_size=np.int32(4),
        log_every=np.int64(2),
        seeds=np.int64(2),
        max_parallel=np.int64(2),
    )
    np.testing.assert_array_equal(numpy.curves["train_loss"], plain.curves["train_loss"])


def _result(final_val, diverged):
    """A sweep of 3 learning rates x 2 seeds with the given final losses and flags."""
    lrs = np.repeat(np.array([0.3, 0.1, 0.03], np.float32), 2)
    curves = {
        "train_loss": np.stack([np.full(3, 9.0), np.full(3, 8.0)], 1).reshape(-1, 1)
        * np.ones((6, 2)),
        "val_loss": np.asarray(final_val, np.float64)[:, None] * np.ones((1, 2)),
        "diverged": np.asarray(diverged, bool)[:, None] * np.ones((1, 2), bool),
    }
    return jol.SweepResult(
        hparams={"learning_rate": lrs},
        seeds=np.tile([0, 1], 3),
        steps=np.array([0, 10]),
        curves=curves,
        params=None,
        num_devices=1,
    )


def test_best_setting_over_seeds_skips_a_setting_with_a_diverged_seed():
    # lr 0.3: one seed diverged (its other seed has the lowest loss of all): never chosen
    val = [0.05, 9.0, 0.2, 0.4, 0.25, 0.26]
    result = _result(val, [False, True, False, False, False, False])
    best = result.best_setting()
    assert best["learning_rate"] == 0.03 and type(best["learning_rate"]) is float  # not 0.0299..
    assert best["final_val_loss"] == pytest.approx(0.255)
    assert best["final_val_loss_std"] == pytest.approx(0.005)
    assert best["runs"] == [4, 5] and best["num_seeds"] == 2
    # the worst seed: lr 0.03 (0.26) beats lr 0.1 (0.4)
    assert result.best_setting(reduce="max")["learning_rate"] == 0.03
    # without the divergence (and its 9.0), lr 0.3 would win
    healed = _result([0.05, 0.1, *val[2:]], [False] * 6)
    assert healed.best_setting()["learning_rate"] == 0.3
    assert result.best_setting("final_train_loss")["learning_rate"] == 0.1  # 8 < 9
    with pytest.raises(ValueError, match="`metric` must be one of"):
        result.best_setting("accuracy")
    with pytest.raises(ValueError, match="reduce"):
        result.best_setting(reduce="min")
    with pytest.raises(ValueError, match="every setting of the sweep has a diverged seed"):
        _result(val, [True, False, True, False, False, True]).best_setting()


def test_seed_keys_and_callback_from_the_top_level():
    # `import jaxopt_lab.sweep as m` would give the function jol.sweep, which hides the
    # subpackage: the top level is where users find these
    sweep_package = importlib.import_module("jaxopt_lab.sweep")
    train_package = importlib.import_module("jaxopt_lab.train")
    assert jol.seed_keys is sweep_package.seed_keys and jol.Callback is train_package.Callback
    assert {"seed_keys", "Callback"} <= set(jol.__all__)
