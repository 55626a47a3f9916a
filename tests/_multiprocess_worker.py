"""One process of a multi-process test job (started by ``jol.distributed.launch``).

``python _multiprocess_worker.py TASK OUT [options]`` joins the job
(``jol.distributed.initialize()`` reads the launcher's environment), runs TASK and, on
process 0, writes what it computed to OUT (an ``.npz``); every process writes a digest
of its own copy of the result to ``OUT.<process>.json``, so the test can check that the
processes agree.

Tasks:
  sweep       an MLP on the digits: 6 learning rates (two diverge) x 2 seeds, minibatches
  eigen       top-3 Hessian eigenvalues of an MLP, each process holding half the data
  mismatch    a sweep whose grid differs in process 1

Options (``key=value``): steps, chunk_size, max_parallel, checkpoint_dir, keep_params,
and die_after=SECONDS (process 1 exits abruptly then, mid-way through its work).
"""

import hashlib
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from jaxopt_lab import distributed

distributed.initialize()
task, out = sys.argv[1], sys.argv[2]
options = dict(a.split("=", 1) for a in sys.argv[3:])
pid = jax.process_index()
ds = jol.datasets.digits()
if pid == 1 and "die_after" in options:  # a worker that dies mid-way (SIGKILL-like)
    import threading

    threading.Timer(float(options["die_after"]), lambda: os._exit(9)).start()


def init_fn(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": 0.3 * jax.random.normal(k1, (64, 16)),
        "b1": jnp.zeros(16),
        "w2": 0.3 * jax.random.normal(k2, (16, 10)),
    }


def loss_fn(p, batch):
    h = jnp.tanh(batch.x @ p["w1"] + p["b1"])
    return optax.softmax_cross_entropy_with_integer_labels(h @ p["w2"], batch.y).mean()


def digest(arrays):
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode() + np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


if task in ("sweep", "mismatch"):
    lrs = [0.01, 0.1, 0.5, 2.0, 300.0, 3000.0]  # the last two diverge
    if task == "mismatch" and pid == 1:
        lrs = [*lrs[:-1], 1000.0]
    result = jol.sweep(
        loss_fn,
        init_fn,
        lambda hp: optax.sgd(hp["learning_rate"]),
        {"learning_rate": lrs},
        ds.train,
        steps=int(options.get("steps", 30)),
        seeds=2,
        batch_size=32,
        eval_data=ds.validation,
        log_every=5,
        chunk_size=int(options.get("chunk_size", 10)),
        max_parallel=int(options.get("max_parallel", 1)),  # 12 chunks: 3 waves of 4
        checkpoint_dir=options.get("checkpoint_dir"),
        keep_params=options.get("keep_params", "1") == "1",
        progress=False,
    )
    arrays = {f"curve_{k}": v for k, v in result.curves.items()}
    arrays.update({f"table_{k}": np.asarray(v) for k, v in result.table().items()})
    if result.params is not None:
        arrays.update({f"param_{k}": v for k, v in result.params.items()})
elif task == "eigen":
    from _curvature_problems import mlp_loss, mlp_params

    params = mlp_params(hidden=8)
    x = np.asarray(ds.train.x[:512], np.float32)
    y = np.asarray(ds.train.y[:512])
    share = x.shape[0] // jax.process_count()
    mine = slice(pid * share, (pid + 1) * share)  # this process loads only its half
    data = distributed.shard_data((x[mine], y[mine]))
    eig = jol.curvature.eigenvalues(mlp_loss, params, data, k=3, tol=1e-6)
    arrays = {"values": np.asarray(eig.values), "converged": np.asarray(eig.converged)}
    estimate, error = jol.curvature.trace(
        mlp_loss, params, data, key=jax.random.key(0), num_probes=20
    )
    arrays["trace"] = np.asarray([estimate, error])
    # Lanczos: the dense path's one reduction across processes per Hessian column is slow
    report = jol.curvature.analyze(mlp_loss, params, data, k=3, method="lanczos")
    arrays["lambda_max"] = np.asarray(report.lambda_max)
    op = jol.curvature.hvp_operator(mlp_loss, params, data)
    loss, grad = op.loss_and_grad()
    arrays["loss"] = np.asarray(loss)
    arrays["grad_w"] = np.asarray(jax.tree.leaves(grad)[0])
else:
    raise SystemExit(f"unknown task {task!r}")

with open(f"{out}.{pid}.json", "w") as f:
    json.dump({"digest": digest(arrays), "processes": jax.process_count()}, f)
if pid == 0:
    np.savez(out, **arrays)
os.sys.stdout.flush()
