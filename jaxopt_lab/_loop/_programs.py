"""The compiled programs of the engine: one run (``train``), many runs (``sweep``).

Each is a :class:`~jaxopt_lab._loop._program.Program` whose first argument is a
:class:`Static` with named fields:

- one run: ``model``, ``optimizer``, ``spec``;
- many runs: ``model``, ``make_optimizer``, ``spec``, ``mesh``, ``shared_batches`` (and
  ``init_fn`` to build the starting points, one per seed).

Many runs are ``vmap`` of the one-run program over a leading run axis, under
``shard_map`` over a 1-D ``"runs"`` mesh when there are several devices: every device runs
the very program one device runs, so the numbers do not depend on the number of devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_lab._loop._program import Program, Static
from jaxopt_lab._loop._step import RunState, init_run, run_chunk, with_extra_args

RUNS = "runs"  # mesh axis of the run (configuration) dimension


def _train_run(static: Static, state: RunState, start, indices, data, monitor, eval_data):
    """``spec.chunk_size`` steps of one run."""
    return run_chunk(
        static.model, static.optimizer, static.spec, state, start, indices, data, monitor, eval_data
    )


def over_runs(fn: Callable, mesh: Mesh | None, num_run_args: int, num_shared: int) -> Callable:
    """``vmap(fn)`` over the first ``num_run_args`` arguments, sharded when ``mesh``."""
    in_axes = (0,) * num_run_args + (None,) * num_shared
    batched = jax.vmap(fn, in_axes=in_axes)
    if mesh is None:
        return batched
    specs = (P(RUNS),) * num_run_args + (P(),) * num_shared
    return jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=P(RUNS), check_vma=False)


def _init_one(static: Static, hp, params, model_state, key, monitor) -> RunState:
    """Step 0 of one run of a sweep (``hp`` its hyperparameters)."""
    optimizer = with_extra_args(static.make_optimizer(hp))
    return init_run(static.model, optimizer, static.spec, params, model_state, key, monitor)


def _train_one(static: Static, state, hp, idx, start, data, monitor, eval_data):
    """``spec.chunk_size`` steps of one run of a sweep."""
    optimizer = static.make_optimizer(hp)
    return run_chunk(
        static.model, optimizer, static.spec, state, start, idx, data, monitor, eval_data
    )


def _init_runs(static: Static, hparams, params, model_state, keys, monitor) -> RunState:
    """Step 0 of every run: ``hparams``, starting points and keys have a run axis."""
    one = lambda *a: _init_one(static, *a)
    return over_runs(one, static.mesh, 4, 1)(hparams, params, model_state, keys, monitor)


def _train_runs(static: Static, state, hparams, indices, start, data, monitor, eval_data):
    """``spec.chunk_size`` steps of every run.

    With ``static.shared_batches`` (a sweep of one seed: every run draws the same
    minibatches) ``indices`` has no run axis: each minibatch is gathered once, and the
    first layer of every run multiplies the same batch, one matrix product for all runs
    instead of one per run.
    """
    one = lambda *a: _train_one(static, *a)
    if static.shared_batches:
        run = over_runs(lambda s, h, *shared: one(s, h, *shared), static.mesh, 2, 5)
    else:
        run = over_runs(one, static.mesh, 3, 4)
    return run(state, hparams, indices, start, data, monitor, eval_data)


def _eval_runs(static: Static, state: RunState, monitor, data) -> tuple[jax.Array, jax.Array]:
    """Every run's evaluation-mode loss on the monitoring subset and on ``data`` now."""

    def one(state: RunState, monitor, data):
        def loss(batch):
            value = static.model.eval_loss(state.params, state.model_state, batch)
            return jax.numpy.asarray(value, jax.numpy.float32)

        return loss(monitor), loss(data)

    return over_runs(one, static.mesh, 1, 2)(state, monitor, data)


def _build(static: Static, key: jax.Array) -> tuple[Any, Any]:
    """``(params, model_state)`` of ``init_fn(key)``: one seed's starting point.

    A small program of its own, compiled once per ``init_fn``, rather than inside the
    training program (random-number code compiles slowly).
    """
    return static.model.split(static.init_fn(key))


train_run = Program(_train_run, donate_argnums=(1,))
init_runs = Program(_init_runs)
train_runs = Program(_train_runs, donate_argnums=(1,))
eval_runs = Program(_eval_runs)
# What one run of a sweep computes, whatever the width of the program and the devices it
# is spread over: lowered (never compiled) for the checkpoint's fingerprint.
init_one = Program(_init_one)
train_one = Program(_train_one)
build = Program(_build)
