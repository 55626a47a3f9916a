"""Checkpoints that know what they hold: refusals, damage, the lock, repeated kills."""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest
from _checkpoint_worker import DATA, GRID, init_fn, loss_fn, sweep, train

import jaxopt_lab as jol
from jaxopt_lab._loop import programs

sweep_module = sys.modules["jaxopt_lab.sweep._sweep"]
WORKER = pathlib.Path(__file__).with_name("_checkpoint_worker.py")
REPO = WORKER.parent.parent


@pytest.fixture(scope="module")
def reference():
    return sweep()


@pytest.fixture(scope="module")
def reference_train():
    return train()


@pytest.fixture
def finished(tmp_path, reference):
    """A checkpoint directory of the finished sweep."""
    out = sweep(tmp_path / "ckpt")
    np.testing.assert_array_equal(out.curves["train_loss"], reference.curves["train_loss"])
    return tmp_path / "ckpt"


@pytest.fixture
def waves(monkeypatch):
    calls = []
    run_wave = sweep_module._run_wave
    monkeypatch.setattr(sweep_module, "_run_wave", lambda *a: calls.append(1) or run_wave(*a))
    return calls


def _same(result, reference):
    for name, curve in reference.curves.items():
        np.testing.assert_array_equal(result.curves[name], curve, err_msg=name)
    for name, leaf in reference.params.items():
        np.testing.assert_array_equal(result.params[name], leaf, err_msg=name)


def test_layout_of_a_checkpoint(finished, waves, reference):
    names = sorted(p.name for p in finished.iterdir())
    assert names == [".lock", "meta.json"] + [f"runs_{j:05d}" for j in range(8)]
    meta = json.loads((finished / "meta.json").read_text())
    assert sorted(meta["items"]) == names[2:]
    assert sorted(meta["fingerprint"]["program"]) == ["build", "init", "train"]
    assert (finished / "runs_00000" / "_CHECKPOINT_METADATA").exists()  # orbax's own
    _same(sweep(finished), reference)
    assert not waves  # everything loaded


def test_metadata_deleted_refuses_the_chunks(finished, waves):
    (finished / "meta.json").unlink()
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .*holds runs_00000.*no meta\.json"):
        sweep(finished, {"learning_rate": [0.1, 0.2, 0.3, 0.4]})
    assert not waves  # refused before any training
    assert (finished / "runs_00000").exists()  # and nothing deleted


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": "npz"}', ""])
def test_unreadable_metadata_is_refused(finished, text):
    (finished / "meta.json").write_text(text)
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .*meta\.json that"):
        sweep(finished)


@pytest.mark.parametrize(
    "changed",
    [
        # a fixed hyperparameter, not in the grid
        {"make_optimizer": lambda h: jol.momentum(h["learning_rate"], 0.0)},
        # a schedule's end value
        {
            "make_optimizer": lambda h: jol.momentum(
                optax.linear_schedule(h["learning_rate"], 0.0, 2000), 0.9
            )
        },
    ],
)
def test_a_different_program_is_refused(finished, changed, waves):
    kwargs = {"seeds": 2, "max_parallel": 1, "progress": False, "checkpoint_dir": finished}
    with pytest.raises(ValueError, match=r"different training program.*program"):
        jol.sweep(loss_fn, init_fn, changed["make_optimizer"], GRID, DATA, **kwargs, **_settings())
    assert not waves


def _settings():
    from _checkpoint_worker import SWEEP

    return SWEEP


def test_an_edited_loss_with_the_same_name_is_refused(finished):
    def loss_fn(params, batch):  # same name and qualified name as the worker's, new body
        return ((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2).mean() * 2.0

    loss_fn.__module__, loss_fn.__qualname__ = "_checkpoint_worker", "loss_fn"
    kwargs = {"seeds": 2, "max_parallel": 1, "progress": False, "checkpoint_dir": finished}
    from _checkpoint_worker import make_optimizer

    with pytest.raises(ValueError, match=r"different training program.*program"):
        jol.sweep(loss_fn, init_fn, make_optimizer, GRID, DATA, **kwargs, **_settings())


def _truncate(item: pathlib.Path) -> None:
    files = sorted((p for p in item.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    with open(files[0], "r+b") as f:
        f.truncate(files[0].stat().st_size // 2)


def _empty_all(item: pathlib.Path) -> None:
    for p in item.rglob("*"):
        if p.is_file():
            p.write_bytes(b"")


def _drop_data(item: pathlib.Path) -> None:
    for d in item.rglob("d"):
        shutil.rmtree(d)


def _swap(item: pathlib.Path) -> None:  # another chunk's (valid) arrays: altered content
    shutil.rmtree(item)
    shutil.copytree(item.with_name("runs_00005"), item)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's loop
@pytest.mark.parametrize(
    "damage",
    [_truncate, _empty_all, _drop_data, _swap, shutil.rmtree],
    ids=["truncated", "emptied", "arrays dropped", "altered", "missing"],
)
def test_a_damaged_chunk_is_named_and_recomputed(finished, damage, waves, reference):
    damage(finished / "runs_00003")
    with pytest.warns(RuntimeWarning, match=r"runs_00003.* it is computed again"):
        resumed = sweep(finished)
    assert len(waves) == 1  # that chunk only
    _same(resumed, reference)
    waves.clear()
    _same(sweep(finished), reference)  # repaired: everything loaded
    assert not waves


def test_a_file_or_unwritable_checkpoint_dir_is_refused_before_computing(tmp_path, monkeypatch):
    built = []
    build = programs.build
    monkeypatch.setattr(programs, "build", lambda *a: built.append(1) or build(*a))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .*file.* is a file"):
        sweep(tmp_path / "file")
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .*cannot be created"):
        sweep(tmp_path / "file" / "below")
    with pytest.raises(TypeError, match=r"`checkpoint_dir` must be a path"):
        sweep(3)
    monkeypatch.setattr(os, "access", lambda *a: False)
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .* is not writable"):
        sweep(tmp_path / "new")
    with pytest.raises(ValueError, match=r"`checkpoint_dir` .*is a file"):
        train(tmp_path / "file")
    assert not built  # nothing computed


def test_train_refuses_damaged_or_foreign_checkpoints(tmp_path, reference_train):
    ckpt = tmp_path / "ckpt"
    first = train(ckpt)
    np.testing.assert_array_equal(
        first.history["train_loss"], reference_train.history["train_loss"]
    )
    names = sorted(p.name for p in ckpt.iterdir())
    assert names[:2] == [".lock", "meta.json"] and len(names) == 3  # the last save only
    last = names[2]
    assert last == "train_00021"  # 21 chunks (rows at steps 0..2000, 100 steps each)
    _truncate(ckpt / last)
    with pytest.warns(RuntimeWarning, match=rf"{last}.* computed again"):
        again = train(ckpt)  # starts over, to the same numbers
    np.testing.assert_array_equal(
        again.history["train_loss"], reference_train.history["train_loss"]
    )
    (ckpt / "meta.json").unlink()
    with pytest.raises(ValueError, match=rf"holds {last} but no meta\.json"):
        train(ckpt)


def _env(cache: pathlib.Path) -> dict:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )


def _start(kind, ckpt, out, cache, *extra):
    return subprocess.Popen(
        [sys.executable, str(WORKER), kind, str(ckpt), str(out), *extra],
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _items(ckpt: pathlib.Path) -> int:
    try:
        return len(json.loads((ckpt / "meta.json").read_text())["items"])
    except (OSError, ValueError, KeyError):
        return -1


def _saves(ckpt: pathlib.Path) -> int:
    """Items written so far: chunk files of a sweep, or the newest save of a run."""
    try:
        items = json.loads((ckpt / "meta.json").read_text())["items"]
    except (OSError, ValueError, KeyError):
        return -1
    return max([int(n.split("_")[1]) for n in items if n.startswith("train_")] or [len(items)])


@pytest.mark.parametrize("kind", ["sweep", "train"])
def test_repeated_kills_at_random_moments_resume_bit_for_bit(
    kind, tmp_path, reference, reference_train
):
    """SIGKILL the worker at random moments, run it again; the numbers never change."""
    rng = random.Random(12 if kind == "sweep" else 34)
    ckpt, out, cache = tmp_path / "ckpt", tmp_path / "out.npz", tmp_path / "xla"
    kills = 0
    for _ in range(12):
        proc = _start(kind, ckpt, out, cache)
        try:
            before, deadline = _saves(ckpt), time.monotonic() + 120
            while proc.poll() is None and _saves(ckpt) <= before and time.monotonic() < deadline:
                time.sleep(0.01)  # this run has saved something: it made progress
            time.sleep(rng.uniform(0.0, 0.2))  # then a random moment, saving or training
            if proc.poll() is None and kills < 3:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert proc.returncode == 0 and kills >= 3, (kills, err[-3000:])
    want = reference if kind == "sweep" else reference_train
    curves = want.curves if kind == "sweep" else want.history
    with np.load(out) as got:
        for name, curve in curves.items():
            np.testing.assert_array_equal(got["curve_" + name], curve, err_msg=name)
        for name, leaf in want.params.items():
            np.testing.assert_array_equal(got["param_" + name], leaf, err_msg=name)


def test_one_writer_at_a_time(tmp_path, reference, waves):
    """Two processes with other grids at the same moment: one refused; then one waiting."""
    ckpt, cache = tmp_path / "ckpt", tmp_path / "xla"
    first = _start("sweep", ckpt, tmp_path / "a.npz", cache)
    other = _start("sweep", ckpt, tmp_path / "b.npz", cache, "0.3,0.2,0.1,0.05")
    try:
        outs = [p.communicate(timeout=240) for p in (first, other)]
    finally:
        for p in (first, other):
            if p.poll() is None:
                p.kill()
    codes = sorted([first.returncode, other.returncode])
    assert codes == [0, 1], outs
    loser = outs[[first.returncode, other.returncode].index(1)][1]
    assert "`checkpoint_dir`" in loser and "differ in: grid" in loser, loser[-2000:]

    # a second process with the same arguments waits for the writer, then loads its work
    shutil.rmtree(ckpt)
    winner = ["", "0.3,0.2,0.1,0.05"][[first.returncode, other.returncode].index(0)]
    writer = _start("sweep", ckpt, tmp_path / "c.npz", cache, *([winner] if winner else []))
    try:
        deadline = time.monotonic() + 120
        while _items(ckpt) < 1 and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer holds the lock and has saved a chunk
        assert writer.poll() is None, writer.communicate()
        grid = None if not winner else {"learning_rate": [0.3, 0.2, 0.1, 0.05]}
        with pytest.raises(ValueError, match=r"being written by another process.*differ in"):
            sweep(ckpt, None if grid else {"learning_rate": [0.3, 0.2, 0.1, 0.05]})
        with pytest.warns(RuntimeWarning, match="waiting for it"):
            shared = sweep(ckpt, grid)
        assert writer.wait(timeout=120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert not waves  # every chunk came from the writer
    if not winner:
        _same(shared, reference)
    assert jax.device_count() == 1
