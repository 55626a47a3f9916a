"""Subprocess worker of tests/test_checkpoints.py.

``python tests/_checkpoint_worker.py KIND CKPT OUT [GRID]`` runs the checkpointed sweep
(KIND ``sweep``) or training run (KIND ``train``) of the tests into ``CKPT`` and saves its
numbers to ``OUT`` (.npz). The tests kill it at random moments and run it again.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the worker imports the package and helpers from the repository
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [os.path.dirname(here), here]

import jax
import numpy as np

import jaxopt_lab as jol

X = np.asarray(jax.random.normal(jax.random.key(0), (256, 8)))
Y = X @ np.linspace(-1.0, 1.0, 8) + 0.1 * np.sin(X[:, 0])
DATA = {"x": X, "y": Y}
GRID = {"learning_rate": [0.05, 0.02, 0.01, 0.005]}
SWEEP = {"steps": 2000, "batch_size": 16, "log_every": 50, "chunk_size": 250}


def init_fn(key):
    return {"w": 0.1 * jax.random.normal(key, (8,)), "b": jax.numpy.zeros(())}


def loss_fn(params, batch):
    return ((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2).mean()


def make_optimizer(h):
    return jol.momentum(h["learning_rate"], 0.9)


def sweep(checkpoint_dir=None, grid=None, **kwargs):
    """4 learning rates x 2 seeds: 8 runs, one per chunk."""
    return jol.sweep(
        loss_fn,
        init_fn,
        make_optimizer,
        grid or GRID,
        DATA,
        seeds=2,
        max_parallel=1,
        progress=False,
        checkpoint_dir=checkpoint_dir,
        **{**SWEEP, **kwargs},
    )


def train(checkpoint_dir=None):
    return jol.train(
        loss_fn,
        init_fn(jax.random.key(1)),
        jol.adam(0.01),  # = optax.adam(0.01), and strict-safe (the tests run strict)
        DATA,
        steps=2000,
        batch_size=16,
        key=jax.random.key(2),
        log_every=50,
        chunk_size=100,
        progress=False,
        checkpoint_dir=checkpoint_dir,
    )


def main(kind: str, checkpoint_dir: str, out: str, grid: str | None = None) -> None:
    if kind == "sweep":
        grid = None if grid is None else {"learning_rate": [float(v) for v in grid.split(",")]}
        result = sweep(checkpoint_dir, grid)
        arrays = {"curve_" + k: v for k, v in result.curves.items()}
        arrays.update({"param_" + k: v for k, v in result.params.items()})
    else:
        result = train(checkpoint_dir)
        arrays = {"curve_" + k: v for k, v in result.history.items()}
        arrays.update({"param_" + k: np.asarray(v) for k, v in result.params.items()})
    np.savez(out, **arrays)


if __name__ == "__main__":
    import _checkpoint_worker  # under its importable name, as the tests see it

    _checkpoint_worker.main(*sys.argv[1:])
