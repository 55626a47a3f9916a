"""The jaxopt-lab command."""

import subprocess
import sys

from jaxopt_lab import _landscape_demo, cli


def test_demo_quick_writes_table_and_png(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "steps to 1e-6" in out
    for entry in _landscape_demo.ENTRIES:
        assert entry.name in out
    png = tmp_path / "trajectories.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_race_reaches_target_on_the_quadratic():
    results = _landscape_demo.race({"lecture_quadratic": 400})
    by_name = {r.optimizer: r for r in results}
    # plain gradient descent at a = 0.45 < 2/lambda_max = 0.5 converges
    assert by_name["sgd"].steps_to_target is not None
    assert by_name["sgd"].final_loss < 1e-6
    assert by_name["sgd"].path.shape == (401, 2)


def test_console_script_help():
    done = subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "demo" in done.stdout


def test_bad_subcommand_exits_nonzero():
    done = subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", "dmeo"], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "invalid choice" in done.stderr
