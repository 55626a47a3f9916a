"""Run in a subprocess with 4 host devices: sharded vs single-device Hessian products.

Prints one JSON line with the maximum differences; ``tests/test_curvature_sharding.py``
checks them. XLA_FLAGS must be set before JAX starts, hence the subprocess.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _curvature_problems import digits_like, mlp_loss, mlp_params
from jax.flatten_util import ravel_pytree

import jaxopt_lab
from jaxopt_lab import curvature

params, data = mlp_params(hidden=8), digits_like(103)  # 103 = 4 * 25 + 3 left over
v = jax.tree.map(lambda p: jnp.sin(jnp.arange(p.size, dtype=p.dtype)).reshape(p.shape), params)
one = [jax.devices()[0]]
out = {"devices": jax.device_count()}
for batch_size in (10,):  # per device: 2 batches of 10 + 5; the 3 left over run alone
    sharded = curvature.hvp_operator(mlp_loss, params, data, batch_size=batch_size)
    single = curvature.hvp_operator(mlp_loss, params, data, batch_size=batch_size, devices=one)
    assert sharded.mesh is not None and sharded.mesh.size == 4 and single.mesh is None
    a, b = ravel_pytree(sharded.matvec(v))[0], ravel_pytree(single.matvec(v))[0]
    out[f"hvp_{batch_size}"] = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    (la, ga), (lb, gb) = sharded.loss_and_grad(), single.loss_and_grad()
    out[f"loss_{batch_size}"] = float(jnp.abs(la - lb) / jnp.abs(lb))
    out[f"grad_{batch_size}"] = float(
        jnp.max(jnp.abs(ravel_pytree(ga)[0] - ravel_pytree(gb)[0]))
        / jnp.max(jnp.abs(ravel_pytree(gb)[0]))
    )

# The sharpness callback inside a sweep sharded over the 4 devices (the sweep's own
# shard_map over runs; the callback must not open a second one over the data) equals
# the same sweep on one device.
x = jax.random.normal(jax.random.key(0), (32, 3))
y = x @ jnp.array([1.0, 2.0, 3.0])


def quad_loss(p, b):
    return jnp.mean((b[0] @ p - b[1]) ** 2)


cb = curvature.sharpness_callback(quad_loss, (x, y), every=5, max_matvecs=3)
curves = {}
for name, devices in (("four", None), ("one", one)):
    result = jaxopt_lab.sweep(
        quad_loss,
        lambda k: jnp.zeros(3),
        lambda hp: optax.sgd(hp["lr"]),
        {"lr": [0.01, 0.02, 0.03, 0.04]},
        (x, y),
        steps=10,
        callbacks=(cb,),
        progress=False,
        devices=devices,
        max_parallel=4,
    )
    curves[name] = np.asarray(result.curves["sharpness"])[:, [0, 5, 10]]
out["sweep_sharpness"] = float(np.max(np.abs(curves["four"] - curves["one"])))
out["sweep_sharpness_value"] = float(curves["one"][0, 0])
out["exact_lambda_max"] = float(jnp.linalg.eigvalsh(2 * x.T @ x / 32)[-1])
print(json.dumps(out))
