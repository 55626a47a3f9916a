"""A sweep across processes: one process per host (or per GPU) of a cluster, or a few
local processes to try it out.

Every process runs this same script. ``jol.distributed.initialize()`` joins them into
one JAX job (on a cluster JAX reads SLURM's or Open MPI's environment; under
``--local N`` the launcher's), after which ``jax.devices()`` lists every process's
devices and ``jol.sweep`` shards the runs over all of them: each process builds and
trains its own runs and receives the whole result. Process 0 prints the table and
writes ``sweep.csv``; with ``--checkpoint DIR`` (on a file system every host sees) each
process saves its own runs, and running the script again resumes, on any number of
processes or devices.

    # SLURM: one task per node (or per GPU, with --gpus-per-task=1)
    srun --nodes=2 --ntasks-per-node=1 python scripts/cluster_sweep.py --checkpoint ckpt/
    # Open MPI
    mpirun -n 2 python scripts/cluster_sweep.py
    # one machine: 2 processes x 2 CPU devices on 127.0.0.1
    python scripts/cluster_sweep.py --local 2 --devices-per-process 2
"""

from __future__ import annotations

import argparse
import csv
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol


def init_fn(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, 32)) / 8.0,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(k2, (32, 10)) / np.sqrt(32.0),
        "b2": jnp.zeros(10),
    }


def loss_fn(params, batch):
    hidden = jnp.tanh(batch.x @ params["w1"] + params["b1"][None, :])
    logits = hidden @ params["w2"] + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, help="start this many local processes")
    parser.add_argument("--devices-per-process", type=int, help="CPU devices each (--local)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--checkpoint", help="a checkpoint folder every process sees")
    parser.add_argument("--out", default="sweep.csv")
    args = parser.parse_args()
    if args.local:  # this script again, in N processes of one job
        argv = list(sys.argv[1:])
        i = argv.index("--local")
        del argv[i : i + 2]
        done = jol.distributed.launch(
            [sys.executable, __file__, *argv],
            args.local,
            devices_per_process=args.devices_per_process,
        )
        return max(abs(p.returncode) for p in done)

    jol.distributed.initialize()  # before anything else touches JAX
    data = jol.datasets.digits()  # every process holds the (small) data
    result = jol.sweep(
        loss_fn,
        init_fn,
        lambda h: jol.momentum(h["learning_rate"], h["momentum"]),
        {"learning_rate": list(np.logspace(-3, 0, 8)), "momentum": [0.0, 0.5, 0.9, 0.99]},
        data.train,
        steps=args.steps,
        seeds=args.seeds,
        batch_size=32,
        eval_data=data.validation,
        log_every=max(1, args.steps // 10),
        max_parallel=8,  # fixed, so the checkpoint resumes on any number of devices
        checkpoint_dir=args.checkpoint,
    )
    if jax.process_index() == 0:
        print(f"{jax.process_count()} process(es), {jax.device_count()} device(s)")
        print(result.format())
        print("best setting:", result.best_setting())
        table = result.table()
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(table))
            writer.writerows(zip(*(np.asarray(v).tolist() for v in table.values()), strict=True))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
