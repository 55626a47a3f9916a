"""The guard against jaxlib 0.10.2's CPU miscompilation (jax-ml/jax#39103)."""

import os
import subprocess
import sys
import textwrap

from jaxopt_lab import _xla_workaround

# A Gauss-Newton-like product, J^T (H_z (J v)) with v zero on the weights, for 10 basis
# vectors at once: with jaxlib 0.10.2's YNNPACK fusions the jitted result was off by up
# to 1e14 (or NaN) against the same computation run op by op.
PROGRAM = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    x = jax.random.normal(jax.random.key(0), (64, 64))
    p = {"b": jnp.zeros(10), "w": jax.random.normal(jax.random.key(1), (64, 10))}

    def column(p, x, e):
        f = lambda p: x @ p["w"] + p["b"]
        z, u = jax.jvp(f, (p,), ({"b": e, "w": jnp.zeros_like(p["w"])},))
        s = jax.nn.softmax(z, axis=-1)
        hu = (s * u - s * jnp.sum(s * u, axis=-1, keepdims=True)) / 64.0
        return jax.vjp(f, p)[1](hu)[0]["b"]

    eye = jnp.eye(10)
    eager = np.stack([column(p, x, e) for e in eye])
    jitted = jax.jit(lambda p, x: jax.vmap(lambda e: column(p, x, e))(eye))(p, x)
    print(float(np.abs(np.asarray(jitted) - eager).max()))
    """
)


def test_jit_equals_eager_after_importing_jaxopt_lab():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", "import jaxopt_lab\n" + PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-6


def test_the_flag_is_set_only_for_the_affected_jaxlib():
    from importlib.metadata import version

    flags = os.environ.get("XLA_FLAGS", "")
    if version("jaxlib") in _xla_workaround.AFFECTED:
        assert _xla_workaround.FLAG in flags.split()
    else:
        assert _xla_workaround.FLAG not in flags.split()
