"""The jaxopt-lab command: the demo's report, every subcommand, and one-line errors."""

import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab import cli, landscapes
from jaxopt_lab.cli import race, registry
from jaxopt_lab.cli import sweep as sweep_command
from jaxopt_lab.curvature._analyze import KINDS

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("race_lecture_quadratic", "sweep", "training_curves", "sharpness", "spectral_density")


def _run(argv):
    """Runs the command in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse: --help and bad arguments
            code = e.code
    return code, out.getvalue(), err.getvalue()


# --- demo --quick, run once for the module -----------------------------------------------


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """``demo --quick`` run once for the whole run: the first worker to get here runs it
    under a file lock in the workers' shared temporary folder, the other reads it."""
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker
    out = shared / "demo"
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "stdout.txt").is_file():
            out.mkdir(exist_ok=True)
            code, stdout, stderr = _run(["demo", "--quick", "--out", str(out), "--no-progress"])
            assert code == 0, stderr
            (out / "stdout.txt").write_text(stdout)
    return out, (out / "stdout.txt").read_text(), json.loads((out / "report.json").read_text())


def test_demo_writes_pngs_and_markdown_that_embeds_them(demo):
    out, _, report = demo
    assert set(report["figures"]) == set(FIGURES)
    markdown = (out / "report.md").read_text()
    for name, path in report["figures"].items():
        assert (out / path).read_bytes()[:8] == PNG, name
        assert f"]({path})" in markdown  # a relative image link
    assert "Learning-rate advice" in markdown


def test_demo_json_sweep_table_and_best_setting(demo):
    _, _, report = demo
    sweep = report["sweep"]
    assert sweep["optimizers"] == ["momentum", "adam"]
    lrs, moms, seeds = sweep["learning_rates"], sweep["momenta"], sweep["seeds"]
    assert sweep["num_runs"] == len(sweep["table"]) == len(lrs) * (len(moms) + 1) * seeds
    row = sweep["table"][0]
    for key in ("optimizer", "learning_rate", "momentum", "seed", "final_val_loss", "diverged"):
        assert key in row
    assert sweep["num_diverged"] == sum(r["diverged"] for r in sweep["table"])
    # the best setting: the lowest mean final validation loss with no diverged seed
    ok = [s for s in sweep["settings"] if s["num_diverged"] == 0]
    best = report["best"]
    assert best["final_val_loss_mean"] == min(s["final_val_loss_mean"] for s in ok)
    # retraining seed 0 with jol.train reproduces the sweep's run (now with sharpness)
    retrained = report["retrained"]
    assert retrained["final_val_loss"] == pytest.approx(retrained["sweep_final_val_loss"], 1e-3)
    assert 0.5 < retrained["val_accuracy"] <= 1.0


def test_demo_json_curvature_sharpness_findings_versions(demo):
    _, _, report = demo
    cu = report["curvature"]
    top = cu["top_eigenvalues"]
    assert top == sorted(top, reverse=True) and cu["lambda_max"] == top[0] > 0
    assert cu["lambda_min"] <= cu["lambda_max"]
    assert cu["kind"] in KINDS
    assert "condition_number" in cu and cu["density"]["num_probes"] >= 1
    advice = cu["learning_rate_advice"]
    assert advice["max_stable_lr_gd"] == pytest.approx(2 / cu["lambda_max"])
    assert advice["learning_rate"] == report["best"]["learning_rate"]
    assert "2/lambda_max" in advice["text"]
    sharp = report["sharpness"]
    assert sharp["evaluations"] >= 2 and sharp["max"] >= sharp["final"] > 0
    assert isinstance(report["findings"], list)
    for finding in report["findings"]:
        assert {"problem", "level", "summary", "workaround"} <= set(finding)
    assert report["versions"]["jax"] and report["versions"]["jaxopt_lab"]
    assert isinstance(report["elapsed_seconds"]["total"], float)
    assert set(report["elapsed_seconds"]["stages"]) >= {"sweep", "retrain", "hessian"}


def test_demo_prints_summary_table(demo):
    _, stdout, report = demo
    summary = stdout[stdout.index("jaxopt-lab demo: summary") :]
    for key in ("best setting", "top eigenvalues", "lambda_min", "kind", "lr advice"):
        assert key in summary
    assert f"{report['curvature']['lambda_max']:.4g}" in summary
    assert "steps to 1e-6" in stdout  # the race table comes first


# --- --help and the happy paths -------------------------------------------------------------


@pytest.mark.parametrize("command", ["demo", "sweep", "hessian", "landscape"])
def test_every_subcommand_has_help(command):
    code, stdout, _ = _run([command, "--help"])
    assert code == 0
    assert stdout.startswith(f"usage: jaxopt-lab {command}")
    assert "--out" in stdout or "--at" in stdout


def test_console_script_help():
    done = subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in ("demo", "sweep", "hessian", "landscape"):
        assert command in done.stdout


def test_the_command_keeps_compiled_programs_in_a_persistent_cache(tmp_path):
    env = dict(
        os.environ,
        JAXOPT_LAB_COMPILATION_CACHE=str(tmp_path / "xla"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # cache even the small programs
        JAX_PLATFORMS="cpu",
    )
    argv = [sys.executable, "-m", "jaxopt_lab.cli", "hessian", "rosenbrock", "--at", "1,1"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    cached = sorted(p.name for p in (tmp_path / "xla").iterdir())
    assert cached  # compiled programs were written
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert sorted(p.name for p in (tmp_path / "xla").iterdir()) == cached  # all found again


def test_hessian_rosenbrock_at_its_minimum():
    code, stdout, _ = _run(["hessian", "rosenbrock", "--at", "1,1"])
    assert code == 0
    assert "1001.6" in stdout and "0.39936" in stdout  # float64: 1001.6006, 0.39936077
    assert "minimum" in stdout
    assert "2507.9" in stdout or "2508.0" in stdout  # condition number 1001.6006 / 0.39936


def test_hessian_defaults_to_the_first_critical_point():
    code, stdout, _ = _run(["hessian", "saddle", "--lr", "0.1"])
    assert code == 0
    assert "kind                  saddle" in stdout
    assert "2, -2" in stdout


def test_hessian_of_the_briefly_trained_demo_model():
    code, stdout, _ = _run(["hessian", "--model", "demo", "--steps", "20", "--k", "1"])
    assert code == 0, stdout
    assert "lanczos, D = 2,410" in stdout
    assert "advice: 2/lambda_max" in stdout


def test_sweep_writes_table_json_and_figure(tmp_path):
    argv = ["sweep", "--optimizer", "momentum", "--lrs", "1,0.1", "--momenta", "0,0.9"]
    argv += ["--seeds", "1", "--steps", "20", "--hidden", "8", "--out", str(tmp_path)]
    code, stdout, _ = _run([*argv, "--no-progress"])
    assert code == 0
    assert "best setting (lowest mean final validation loss over 1 seed(s)" in stdout
    with open(tmp_path / "sweep_momentum.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {float(r["momentum"]) for r in rows} == {0.0, 0.9}
    saved = json.loads((tmp_path / "sweep_momentum.json").read_text())
    assert saved["grid"] == {"learning_rate": [1.0, 0.1], "momentum": [0.0, 0.9]}
    assert saved["best"]["learning_rate"] in (1.0, 0.1)
    assert (tmp_path / "sweep_momentum.png").read_bytes()[:8] == PNG


def test_sweep_log_grid_from_lr_min_to_lr_max():
    args = cli.build_parser().parse_args(["sweep", "--lr-min", "1e-3", "--lr-max", "1"])
    args.num = 4
    assert sweep_command.grid_rates(args) == [1.0, 0.1, 0.01, 0.001]


def test_landscape_race_table_and_figure(tmp_path):
    argv = ["landscape", "lecture_quadratic", "--optimizers", "sgd,adam", "--steps", "100"]
    code, stdout, _ = _run([*argv, "--out", str(tmp_path)])
    assert code == 0
    lines = stdout.splitlines()
    sgd = next(line for line in lines if line.startswith("SGD "))
    assert sgd.split()[3] == "73"  # a = 0.45 < 2/4 reaches 1e-6 after 73 steps
    assert any(line.startswith("Adam ") for line in lines)
    assert (tmp_path / "landscape_lecture_quadratic.png").read_bytes()[:8] == PNG


def test_race_reaches_target_on_the_quadratic():
    results = race.race({"lecture_quadratic": 400})
    by_name = {r.optimizer: r for r in results}
    # plain gradient descent at a = 0.45 < 2/lambda_max = 0.5 converges
    assert by_name["sgd"].steps_to_target is not None
    assert by_name["sgd"].final_loss < 1e-6
    assert by_name["sgd"].path.shape == (401, 2)


def test_untuned_landscapes_get_rates_from_curvature_and_box():
    himmelblau = landscapes.himmelblau()
    # sgd: 1 / L, L = 82.28, the largest eigenvalue at the minimum (3, 2) (at the start: 42)
    assert race.learning_rate(registry.get("sgd"), himmelblau) == (
        pytest.approx(1 / 82.2843, rel=1e-4)
    )
    # adam: 1% of the box's side (10)
    assert race.learning_rate(registry.get("adam"), himmelblau) == 0.1
    for name in landscapes.REGISTRY:
        rates = race.learning_rates(race.ENTRIES, landscapes.get(name))
        assert all(math.isfinite(r) and r > 0 for r in rates), name


# --- bad arguments: one line on stderr, exit status 2, no traceback ---------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dmeo"], "jaxopt-lab: error: argument command: invalid choice: 'dmeo'"),
        (["demo", "--quik"], "jaxopt-lab demo: error: unrecognized arguments: --quik"),
        (["sweep", "--lrs", "0.1,-0.3"], "argument --lrs: learning rates must be > 0, got -0.3"),
        (["sweep", "--lrs", "1,,x"], "argument --lrs: expected comma-separated learning rates"),
        (["sweep", "--optimizer", "adamw"], "unknown optimizer 'adamw'; did you mean 'adam'?"),
        (["sweep", "--optimizer", "sgd", "--momenta", "0.9"], "argument --momenta: sgd has no"),
        (["sweep", "--lr-min", "1", "--lr-max", "0.1"], "argument --lr-min: must be below"),
        (["sweep", "--momenta", "0.9,1.5"], "argument --momenta: momenta must be in [0, 1)"),
        (["sweep", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["hessian", "rosenbrok"], "unknown landscape 'rosenbrok'; did you mean 'rosenbrock'?"),
        (["hessian", "rosenbrock", "--at", "1,1,1"], "argument --at: rosenbrock takes 2"),
        (["hessian", "rosenbrock", "--at", "-1,2"], "write --at=VALUE when the value starts"),
        (["sweep", "--lrs", "-0.1"], "argument --lrs: learning rates must be > 0, got -0.1"),
        (["hessian"], "jaxopt-lab hessian: error: give one of: a landscape"),
        (["landscape", "--optimizers", "sgd,foo"], "argument --optimizers: unknown optimizer"),
        (["landscape", "moon"], "argument landscape: unknown landscape 'moon'"),
        (["landscape", "--lr", "-1"], "argument --lr: must be a finite number > 0"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, expected):
    code, stdout, stderr = _run(argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"jaxopt-lab{' ' + argv[0] if argv[0] != 'dmeo' else ''}: error:")
    assert expected in lines[0]
    assert not stdout


def test_bad_subcommand_from_the_shell_has_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", "dmeo"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "did you mean 'demo'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_output_into_a_closed_pipe_stops_quietly():
    """``jaxopt-lab hessian saddle | head -1``: no error message once the reader is gone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", "hessian", "saddle"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader goes away before the report is printed
    stderr = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 141, stderr
    assert stderr == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "--steps", "99999999999"],
        ["sweep", "--hidden", "100000000"],
        ["sweep", "--seeds", "99999999999"],
        ["sweep", "--num", "99999999999", "--lr-min", "1e-3", "--lr-max", "1"],
        ["sweep", "--batch-size", "99999999999"],
        ["sweep", "--lrs", ",".join(["0.1"] * 100_000)],
        ["hessian", "--model", "demo", "--k", "100000"],
        ["hessian", "--model", "demo", "--steps", "99999999999"],
        ["landscape", "rosenbrock", "--steps", "2000000000"],
    ],
    ids=lambda argv: " ".join(a[:20] for a in argv[:3]),
)
def test_every_size_is_bounded_and_refused_at_once(argv):
    """A huge size is refused when the arguments are parsed: no training, no hang."""
    import signal

    def hang(*_):
        raise AssertionError(f"jaxopt-lab {' '.join(argv)[:80]} did not answer: it hangs")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)  # a guard against hangs, far above the milliseconds a refusal takes
    try:
        code, _, err = _run(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2 and "at most" in err and err.count("\n") == 1, err


def test_out_is_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_command, "sweep_problem", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "file").write_text("")
    code, _, err = _run(["sweep", "--out", str(tmp_path / "file"), "--no-progress"])
    assert code == 2 and "argument --out" in err and "is a file" in err, err


def test_the_demo_holds_adam_to_its_own_threshold():
    """Adam retrained by the demo: the preconditioned sharpness against 38 / lr, and the
    advice judged on it."""
    from jaxopt_lab import datasets
    from jaxopt_lab.cli import analysis, demo
    from jaxopt_lab.cli.problem import digits_mlp

    best = {"optimizer": "adam", "learning_rate": 0.003, "momentum": None}
    model, ds = digits_mlp(demo.QUICK.hidden), datasets.digits()
    trained = demo.retrain(model, ds, best, demo.QUICK, progress=False)
    h = trained.history
    np.testing.assert_allclose(h["stability_threshold"][0], 38 / 0.003, rtol=1e-5)
    summary = analysis.sharpness_summary(h, best, demo.QUICK.sharpness_examples)
    assert summary["quantity"] == "preconditioned_sharpness"
    assert summary["bound"] == pytest.approx(38 / 0.003, rel=1e-5)
    assert summary["initial_step"] == demo.QUICK.sharpness_every  # none before an update
    report = jol.curvature.analyze(model.loss_fn, trained.params, ds.train, method="lanczos", k=1)
    advice = analysis.learning_rate_advice(report, best, preconditioned=50.0)
    assert advice["threshold"] == pytest.approx(38 / 0.003, rel=1e-5)
    assert "preconditioned sharpness lambda_max(P^-1 H) = 50" in advice["text"]
