"""Shared model and settings for the train/sweep tests, and their subprocess worker.

Run as ``python tests/_sweep_helpers.py OUT CKPT`` with 4 host devices, it is the worker
of the subprocess tests: it saves the reference sweep, sharded over the 4 devices, to
``OUT`` (.npz); then it runs the same sweep with checkpoints in ``CKPT`` and kills its
own process (SIGKILL) right after the first chunk of runs is saved.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

if __name__ == "__main__":  # the worker imports the package from the repository
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxopt_lab as jol

HIDDEN = 16
DIGITS = jol.datasets.digits()
LEARNING_RATES = [0.3, 0.1, 0.03, 0.01]
MOMENTA = [0.0, 0.9]


def init_mlp(key: jax.Array) -> dict:
    """A 64-16-10 tanh MLP."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, HIDDEN)) / 8.0,
        "b1": jnp.zeros(HIDDEN),
        "w2": jax.random.normal(k2, (HIDDEN, 10)) / 4.0,
        "b2": jnp.zeros(10),
    }


def mlp_loss(params: dict, batch) -> jax.Array:
    hidden = jnp.tanh(batch.x @ params["w1"] + params["b1"][None, :])
    logits = hidden @ params["w2"] + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def make_momentum(hparams) -> optax.GradientTransformation:
    return jol.momentum(hparams["learning_rate"], hparams["momentum"])


class NNXModel(nnx.Module):
    """The same MLP as a Flax NNX module."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, HIDDEN, rngs=rngs)
        self.out = nnx.Linear(HIDDEN, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.hidden(x)))


class ParamNorm:
    """A callback: the parameter norm, and how many times it was evaluated."""

    def __init__(self, every: int):
        self.every = every

    def init(self, params):
        del params
        return jnp.zeros([], jnp.int32)

    def __call__(self, step, params, state):
        del step
        norm = optax.tree.norm(params)
        return state + 1, {"param_norm": norm, "evaluations": state + 1}


PARAM_NORM = ParamNorm(every=10)

REFERENCE = {
    "steps": 30,
    "batch_size": 32,
    "log_every": 10,
    "eval_data": DIGITS.validation,
    "callbacks": (PARAM_NORM,),
    "max_parallel": 4,
    "progress": False,
}
"""Settings of the reference sweep; tests that share them share its compiled program."""

REFERENCE_GRID = {"learning_rate": LEARNING_RATES, "momentum": MOMENTA}


def reference_sweep(grid=None, **kwargs) -> jol.SweepResult:
    """4 learning rates x 2 momenta x 2 seeds: 16 runs in 4 chunks of 4."""
    return jol.sweep(
        mlp_loss,
        init_mlp,
        make_momentum,
        grid or REFERENCE_GRID,
        DIGITS.train,
        seeds=2,
        **{**REFERENCE, **kwargs},
    )


class CountCompilations(logging.Handler):
    """Counts XLA compilations of the engine's programs, in any thread.

    JAX logs every compilation on its ``jax._src.dispatch`` logger (at DEBUG level unless
    ``jax_log_compiles`` is set). Use as ``with CountCompilations() as count: ...`` and
    read ``count.value`` (the sweep's training program, ``jit(_train_runs)``, by
    default), or ``count.all`` (every compilation, of any program).
    """

    PROGRAM = "jit(_train_runs)"

    def __init__(self, program: str | None = None):
        super().__init__(logging.DEBUG)
        self.value = 0
        self.all = 0
        self.names: list[str] = []
        self._message = f"XLA compilation of {program or self.PROGRAM} "
        self._logger = logging.getLogger("jax._src.dispatch")

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "XLA compilation of" in text:
            self.all += 1
            self.names.append(text.split("XLA compilation of ")[1].split(" ")[0])
        self.value += self._message in text + " "

    def __enter__(self) -> CountCompilations:
        self._level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def save_result(path: str, result: jol.SweepResult, **extra) -> None:
    arrays = {"curve_" + k: v for k, v in result.curves.items()}
    arrays.update({"param_" + k: v for k, v in result.params.items()})
    np.savez(path, num_devices=result.num_devices, **arrays, **extra)


def _main(out: str, checkpoint_dir: str) -> None:
    assert jax.device_count() == 4, jax.devices()
    with CountCompilations() as count:
        result = reference_sweep()
    save_result(out, result, chunk_compilations=count.value)

    from jaxopt_lab._loop import checkpoint as _checkpoint

    save = _checkpoint.Directory._save  # in the writer thread, once the chunk is computed

    def save_then_die(self, name, arrays, replaces):
        save(self, name, arrays, replaces)
        if name.startswith("runs_"):
            os.kill(os.getpid(), signal.SIGKILL)

    _checkpoint.Directory._save = save_then_die
    reference_sweep(checkpoint_dir=checkpoint_dir)
    raise SystemExit("not killed")  # the sweep should never get here


if __name__ == "__main__":
    import _sweep_helpers  # the functions under their importable names (for checkpoints)

    _sweep_helpers._main(*sys.argv[1:])
