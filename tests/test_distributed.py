"""Several processes (JAX's distributed runtime, gloo on CPU) against one, bit for bit.

Each job runs ``tests/_multiprocess_worker.py`` in fresh processes started by
``jol.distributed.launch`` on 127.0.0.1 (a free port, timeouts, nothing left running):
2 processes x 2 CPU devices against 1 process x 4 CPU devices.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab import distributed

HERE = pathlib.Path(__file__).parent
# one job at a time: each runs several processes on the suite's cores
pytestmark = pytest.mark.xdist_group("distributed")
WORKER = [sys.executable, str(HERE / "_multiprocess_worker.py")]


def launch(task, out, processes, devices, *options, wall_timeout=240):
    """The worker's ``task`` in ``processes`` x ``devices``: every process's outcome."""
    return distributed.launch(
        [*WORKER, task, str(out), *options],
        processes,
        devices_per_process=devices,
        timeout=60,
        wall_timeout=wall_timeout,
        capture_output=True,
        cwd=HERE,
    )


def job(task, out, processes, devices, *options, wall_timeout=240):
    """As :func:`launch`, all processes succeeding and agreeing: process 0's arrays."""
    results = launch(task, out, processes, devices, *options, wall_timeout=wall_timeout)
    for p in results:
        assert p.returncode == 0, p.stderr[-3000:]
    digests = {
        json.loads(pathlib.Path(f"{out}.{i}.json").read_text())["digest"] for i in range(processes)
    }
    assert len(digests) == 1, "the processes hold different results"
    return dict(np.load(f"{out}.npz"))


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    differ = [k for k in a if not np.array_equal(a[k], b[k], equal_nan=True)]
    assert not differ, f"differ: {differ}"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: the sweep in one process with 4 devices."""
    return job("sweep", tmp_path_factory.mktemp("one") / "sweep", 1, 4)


def test_sweep_in_two_processes_equals_one_process_bit_for_bit(one_process, tmp_path):
    two = job("sweep", tmp_path / "sweep", 2, 2)
    assert_same(two, one_process)
    assert two["param_w1"].shape == (12, 64, 16)  # every run's parameters, on every process
    diverged = two["table_diverged"]
    assert diverged.sum() >= 2 and not diverged.all()  # frozen and flagged, the rest trained
    assert np.isfinite(two["table_final_train_loss"][~diverged]).all()


def test_eigenvalues_with_data_split_over_processes(tmp_path):
    """Each of 2 processes loads half the data; against all of it in this one process."""
    two = job("eigen", tmp_path / "eigen", 2, 2)
    sys.path.insert(0, str(HERE))
    from _curvature_problems import mlp_loss, mlp_params

    ds = jol.datasets.digits()
    data = (np.asarray(ds.train.x[:512], np.float32), np.asarray(ds.train.y[:512]))
    params = mlp_params(hidden=8)
    op = jol.curvature.hvp_operator(mlp_loss, params, data, devices=jax.devices()[:1])
    ref = jol.curvature.eigenvalues(op, k=3, tol=1e-6)
    assert two["converged"].all()
    np.testing.assert_allclose(two["values"], np.asarray(ref.values), rtol=1e-6)
    report = jol.curvature.analyze(op, k=3, method="lanczos")
    np.testing.assert_allclose(two["lambda_max"], report.lambda_max, rtol=1e-6)
    estimate, error = jol.curvature.trace(op, key=jax.random.key(0), num_probes=20)
    np.testing.assert_allclose(two["trace"], [estimate, error], rtol=1e-5)
    loss, grad = op.loss_and_grad()
    np.testing.assert_allclose(two["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(two["grad_w"], jax.tree.leaves(grad)[0], rtol=1e-5, atol=1e-7)


def test_checkpoint_survives_kills_and_resumes_in_another_layout(one_process, tmp_path):
    """SIGKILL the 2-process job at random moments; resume; then in 1 process."""
    ckpt = tmp_path / "ckpt"
    options = (f"checkpoint_dir={ckpt}",)
    rng = np.random.default_rng(0)
    killed = 0
    for _ in range(2):
        try:
            job("sweep", tmp_path / "killed", 2, 2, *options, wall_timeout=rng.uniform(2.5, 6))
        except TimeoutError:
            killed += 1
    assert killed >= 1
    resumed = job("sweep", tmp_path / "resumed", 2, 2, *options)
    assert_same(resumed, one_process)
    items = set(json.loads((ckpt / "meta.json").read_text())["items"])
    assert items == {"wave_000000", "wave_000004", "wave_000008"}  # each saved by 2 processes
    # the same directory in one process of 2 devices: everything is loaded, nothing trained
    assert_same(job("sweep", tmp_path / "one", 1, 2, *options), one_process)
    assert set(json.loads((ckpt / "meta.json").read_text())["items"]) == items
    # other arguments are refused on every process (process 0 holds the lock and checks)
    for p in launch("sweep", tmp_path / "other", 2, 2, "steps=20", *options):
        assert p.returncode == 1
        assert "they differ in: program, spec" in p.stderr.strip().splitlines()[-1]


def test_different_grid_in_one_process_is_refused_by_name(tmp_path):
    for p in launch("mismatch", tmp_path / "m", 2, 2):
        assert p.returncode == 1
        assert "`grid` differs between process 0 and process 1" in p.stderr


@pytest.mark.parametrize("process_id", [0, 1])
def test_a_process_that_never_starts_is_an_error_within_the_timeout(process_id, tmp_path):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAXOPT_LAB_COORDINATOR=f"127.0.0.1:{distributed.free_port()}",
        JAXOPT_LAB_NUM_PROCESSES="2",
        JAXOPT_LAB_PROCESS_ID=str(process_id),
        JAXOPT_LAB_INIT_TIMEOUT="2",
    )
    start = time.monotonic()
    p = subprocess.run(
        [*WORKER, "sweep", str(tmp_path / "alone")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert time.monotonic() - start < 60  # an error, not a hang
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: jaxopt_lab.distributed.initialize")
    assert ("process 1 of 2 did not reach" if process_id == 0 else "could not reach") in last


def test_launch_returns_every_exit_code_and_stops_the_rest():
    code = "import os, sys, time; pid = int(os.environ['JAXOPT_LAB_PROCESS_ID']);" + (
        "sys.exit(3) if pid == 1 else time.sleep(600)"
    )
    start = time.monotonic()
    results = distributed.launch([sys.executable, "-c", code], 2, timeout=1, capture_output=True)
    assert time.monotonic() - start < 60
    assert results[1].returncode == 3 and results[0].returncode == -9  # killed, not waited for


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: distributed.launch("python x.py", 2), "`command` must be a non-empty list"),
        (lambda: distributed.launch([sys.executable], 0), "`num_processes` must be"),
        (lambda: distributed.initialize("localhost", 2, 0), "`coordinator_address` must be"),
        (lambda: distributed.initialize("127.0.0.1:1", 2, 2), "`process_id` must be"),
        (lambda: distributed.initialize("127.0.0.1:1", 2, 0, timeout=-1), "`timeout`"),
        (lambda: distributed.initialize(num_processes=2), "pass all three"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message.replace("`", "`")):
        call()


def test_command_line_runs_the_sweep_in_processes(tmp_path):
    argv = ["sweep", "--steps", "20", "--lrs", "1,0.3,0.1", "--seeds", "2", "--no-progress"]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxopt_lab.cli",
            *argv,
            "--processes",
            "2",
            "--devices-per-process",
            "1",
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("best setting") == 1  # process 0 reports, the other does not
    assert "(on 2 process(es), 2 device(s) in all)" in p.stdout
    two = json.loads((tmp_path / "two" / "sweep_momentum.json").read_text())
    assert len(two["table"]) == 6 and two["best"]["learning_rate"] in (1.0, 0.3, 0.1)
    # the runs themselves are the library's, checked bit for bit against one process above


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "0"], "argument --processes: must be >= 1, got 0"),
        (["--processes", "1000"], "argument --processes: must be at most 64"),
        (["--devices-per-process", "two"], "argument --devices-per-process"),
    ],
)
def test_command_line_bad_process_counts(argv, message, capsys):
    from jaxopt_lab.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["sweep", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_process_that_dies_mid_way_stops_the_others_within_the_timeout(tmp_path):
    """Without the launcher (as on a cluster): JAX's heartbeat, set to the timeout."""
    port = distributed.free_port()
    procs = []
    for i in range(2):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            JAX_NUM_CPU_DEVICES="2",
            JAXOPT_LAB_COORDINATOR=f"127.0.0.1:{port}",
            JAXOPT_LAB_NUM_PROCESSES="2",
            JAXOPT_LAB_PROCESS_ID=str(i),
            JAXOPT_LAB_INIT_TIMEOUT="10",
        )
        argv = [*WORKER, "sweep", str(tmp_path / "s"), "steps=5000", "die_after=3"]
        procs.append(
            subprocess.Popen(
                argv,
                env=env,
                cwd=HERE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        start = time.monotonic()
        _, err = procs[0].communicate(timeout=120)  # an error, never a hang
        assert time.monotonic() - start < 90
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert procs[0].returncode != 0
    assert "heartbeat timeout" in err or "Gloo" in err or "another task died" in err


def test_the_cluster_example_runs_in_local_processes(tmp_path):
    script = HERE.parent / "scripts" / "cluster_sweep.py"
    argv = [sys.executable, str(script), "--local", "2", "--devices-per-process", "2"]
    argv += ["--steps", "20", "--seeds", "1", "--out", str(tmp_path / "s.csv")]
    argv += ["--checkpoint", str(tmp_path / "ckpt")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 process(es), 4 device(s)" in p.stdout
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 1 + 32 and rows[0].startswith("learning_rate,momentum,seed")
