"""Hessian-vector products sharded over 4 host devices equal the single-device ones."""

import json
import os
import subprocess
import sys

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_curvature_sharded.py")


def test_sharded_over_four_devices_matches_one_device():
    root = os.path.dirname(os.path.dirname(HELPER))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    run = subprocess.run(
        [sys.executable, HELPER], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    for name in ("hvp_10", "loss_10", "grad_10"):
        assert out[name] < 1e-4, (name, out)
    assert out["sweep_sharpness"] < 1e-5, out
    assert (
        abs(out["sweep_sharpness_value"] - out["exact_lambda_max"]) < 1e-3 * out["exact_lambda_max"]
    ), out
