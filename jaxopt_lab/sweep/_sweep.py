"""``sweep``: every grid combination x every seed, vmapped and sharded over devices."""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm.auto
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab._types import Params
from jaxopt_lab.sweep import _grid
from jaxopt_lab.sweep._result import SweepResult
from jaxopt_lab.train import _checkpoint as ckpt
from jaxopt_lab.train import _checks as checks
from jaxopt_lab.train._callbacks import Callback
from jaxopt_lab.train._engine import (
    RunState,
    Spec,
    Static,
    init_run,
    jit,
    key_words,
    minibatch_indices,
    run_chunk,
)
from jaxopt_lab.train._train import _probe, assemble_history

RUNS = "runs"  # mesh axis of the run (configuration) dimension


def _over_runs(fn: Callable, mesh: Mesh | None, num_run_args: int, num_shared: int):
    """``vmap(fn)`` over the first ``num_run_args`` arguments, sharded when ``mesh``."""
    in_axes = (0,) * num_run_args + (None,) * num_shared
    batched = jax.vmap(fn, in_axes=in_axes)
    if mesh is None:
        return batched
    specs = (P(RUNS),) * num_run_args + (P(),) * num_shared
    return jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=P(RUNS), check_vma=False)


def _init_runs(static: Static, hparams, params, monitor) -> RunState:
    loss_fn, _, make_optimizer, spec, mesh = static.items

    def one(hp, params, monitor):
        return init_run(loss_fn, make_optimizer(hp), spec, params, monitor)

    return _over_runs(one, mesh, 2, 1)(hparams, params, monitor)


def _train_runs(static: Static, state, hparams, indices, start, data, monitor, eval_data):
    loss_fn, _, make_optimizer, spec, mesh = static.items

    def one(state, hp, idx, start, data, monitor, eval_data):
        optimizer = make_optimizer(hp)
        return run_chunk(loss_fn, optimizer, spec, state, start, idx, data, monitor, eval_data)

    run = _over_runs(one, mesh, 3, 4)
    return run(state, hparams, indices, start, data, monitor, eval_data)


def _call_init_fn(init_fn: Static, key: jax.Array) -> Params:
    return init_fn.items[0](key)


_init_params = jit(_call_init_fn, static_argnums=0)
_init = jit(_init_runs, static_argnums=0)
_chunk = jit(_train_runs, static_argnums=0, donate_argnums=1)


def sweep(
    loss_fn: Callable[[Params, Any], jax.Array],
    init_fn: Callable[[jax.Array], Params],
    make_optimizer: Callable[[Mapping[str, jax.Array]], optax.GradientTransformation],
    grid: Mapping[str, Sequence[float]],
    data: Any,
    *,
    steps: int,
    seeds: int | Sequence[int] = 1,
    batch_size: int | None = None,
    eval_data: Any = None,
    log_every: int = 1,
    callbacks: Sequence[Callback] = (),
    monitor_size: int = 1024,
    divergence_factor: float | None = 10.0,
    max_parallel: int | None = None,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
) -> SweepResult:
    """Trains every combination of ``grid`` with every seed, in one compiled program.

    Each run is exactly a :func:`jaxopt_lab.train` run (the same compiled step, under
    ``jax.vmap``): run ``(hparams, seed)`` equals ``train(loss_fn, init_fn(init_key),
    make_optimizer(hparams), data, key=data_key, ...)`` with ``init_key, data_key =
    jaxopt_lab.sweep.seed_keys(seed)`` (import it with ``from jaxopt_lab.sweep import
    seed_keys``); see ``train`` for the history and the step semantics.
    ``make_optimizer`` is called with traced scalars inside the vmapped program, so one
    compilation serves the whole grid.

    Runs are ordered combination-major (``itertools.product`` over the grid's keys in
    order), seed-minor, and split into balanced chunks of at most ``max_parallel`` runs.
    A device trains one chunk at a time with ``vmap``; with several devices, chunks are
    sharded over a 1-D ``"runs"`` mesh with ``shard_map``, one chunk per device. Every
    device then runs the very program a single device runs for a chunk, so for a given
    ``max_parallel`` the results are bitwise identical for any number of devices.

    A diverged run (a non-finite value, or a monitoring loss above ``divergence_factor``
    times the magnitude of its initial value) is frozen and flagged; the other runs are
    unaffected.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      init_fn: ``init_fn(key) -> params``, jitted and called once per seed (with that
        seed's ``init_key``); runs with the same seed start from the same parameters.
      make_optimizer: ``make_optimizer(hparams) -> optax.GradientTransformation`` where
        ``hparams`` maps every grid key to a traced scalar. It must read every key.
      grid: hyperparameter name -> non-empty list of numbers.
      data: a pytree of arrays sharing a leading axis.
      steps: updates per run, ``>= 1``.
      seeds: the number of seeds (``0, ..., seeds - 1``) or a list of seeds.
      batch_size: examples per update, or ``None`` for full batch.
      eval_data: optional validation data.
      log_every: one history row every ``log_every`` steps; must divide ``steps``.
      callbacks: :class:`jaxopt_lab.train.Callback` s, evaluated in every run.
      monitor_size: examples in the fixed monitoring subset for ``train_loss``.
      divergence_factor: the bound on ``train_loss / |initial train_loss|`` (``None``:
        only non-finite values count as divergence).
      max_parallel: the most runs one device trains at once (a memory bound). The
        default, ``ceil(runs / devices)``, gives every device one chunk; pass it
        explicitly for results that do not depend on the number of devices.
      chunk_size: steps per compiled call (default about ``steps / 20``).
      devices: the devices to shard over (default ``jax.devices()``).
      progress: show a tqdm progress bar.
      checkpoint_dir: if given, every finished chunk of runs is saved there
        atomically; calling again with the same arguments loads finished chunks instead
        of recomputing them, and different arguments raise ``ValueError``. Functions
        are recognised by name, the optimizer by one probe update.

    Returns:
      A :class:`SweepResult`.

    Raises:
      ValueError: naming the argument: an empty grid, a grid key ``make_optimizer``
        does not read, arrays with different leading axes, ``batch_size`` larger than
        the data, ``steps <= 0``, ...

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> import jaxopt_lab as jol
      >>> ds = jol.datasets.digits()
      >>> def init_fn(key):
      ...     return {"w": 0.01 * jax.random.normal(key, (64, 10)), "b": jnp.zeros(10)}
      >>> def loss_fn(params, batch):
      ...     logits = batch.x @ params["w"] + params["b"]
      ...     return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
      >>> result = jol.sweep(
      ...     loss_fn, init_fn,
      ...     lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
      ...     {"learning_rate": [0.3, 0.1, 0.03], "momentum": [0.0, 0.9]},
      ...     ds.train, steps=200, seeds=2, batch_size=32, eval_data=ds.validation,
      ...     log_every=20, progress=False)
      >>> result.table()["best_val_loss"].shape
      (12,)
      >>> best = result.best()  # dict: run, learning_rate, momentum, seed, ...
    """
    steps = checks.positive_int("steps", steps)
    grid = _grid.check_grid(grid)
    seed_list = _grid.check_seeds(seeds)
    n = checks.leading_axis("data", data)
    if eval_data is not None:
        checks.leading_axis("eval_data", eval_data)
    batch_size = checks.check_batch_size(batch_size, n)
    log_every = checks.check_log_every(log_every, steps)
    spec_callbacks = checks.check_callbacks(callbacks)
    _grid.check_make_optimizer(make_optimizer, init_fn, grid)
    runs = _grid.make_runs(grid, seed_list)
    num_runs = runs.seeds.size
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty; pass None to use jax.devices().")
    mesh = Mesh(np.array(devices), (RUNS,)) if len(devices) > 1 else None
    if max_parallel is None:
        max_parallel = math.ceil(num_runs / len(devices))
    max_parallel = checks.positive_int("max_parallel", max_parallel)
    num_run_chunks = math.ceil(num_runs / max_parallel)
    runs_per_chunk = math.ceil(num_runs / num_run_chunks)  # balanced chunks

    spec = Spec(
        steps=steps,
        num_examples=n,
        batch_size=batch_size,
        log_every=log_every,
        chunk_size=checks.choose_chunk_size(chunk_size, steps, log_every),
        divergence_factor=checks.check_divergence_factor(divergence_factor),
        callbacks=spec_callbacks,
        schedule=None,
    )
    static = Static(loss_fn, init_fn, make_optimizer, spec, mesh)
    replicated = None if mesh is None else NamedSharding(mesh, P())
    by_run = None if mesh is None else NamedSharding(mesh, P(RUNS))

    def put(tree, sharding):
        tree = checks.to_device(tree)
        return tree if sharding is None else jax.device_put(tree, sharding)

    monitor = put(checks.monitoring_subset(data, n, monitor_size), replicated)
    data = put(data, replicated)
    eval_data = None if eval_data is None else put(eval_data, replicated)
    shared = (data, monitor, eval_data)
    keys = {int(s): _grid.seed_keys(int(s)) for s in seed_list}
    params_like = jax.eval_shape(init_fn, keys[int(seed_list[0])][0])

    directory = None
    if checkpoint_dir is not None:
        meta = _fingerprint(
            static,
            grid,
            seed_list,
            monitor_size,
            runs_per_chunk,
            data,
            eval_data,
            keys[int(seed_list[0])][0],
        )
        directory = ckpt.open_directory(checkpoint_dir, meta)

    bar = tqdm.auto.tqdm(
        total=num_runs * steps, disable=not progress, unit="run-step", desc="sweep"
    )
    chunks = [
        np.arange(j * runs_per_chunk, min((j + 1) * runs_per_chunk, num_runs))
        for j in range(num_run_chunks)
    ]
    paths = [
        None if directory is None else directory / f"runs_{j:05d}.npz"
        for j in range(num_run_chunks)
    ]
    parts: list[Any] = [None] * num_run_chunks
    for j, path in enumerate(paths):
        if path is not None and path.exists():
            saved = ckpt.load_arrays(path)
            history = {k[2:]: v for k, v in saved.items() if k.startswith("h_")}
            like = _stacked(params_like, chunks[j].size)
            parts[j] = (history, ckpt.tree_from_arrays("p", saved, like))
            bar.update(chunks[j].size * steps)
    pending = [j for j in range(num_run_chunks) if parts[j] is None]
    warm = concurrent.futures.Future()
    warm.set_result(None)
    if pending:  # every wave has the same shapes: one program, compiled in a thread
        wave_hparams = {
            k: jax.ShapeDtypeStruct(
                (runs_per_chunk * len(devices),), jnp.asarray(v[:1]).dtype, sharding=by_run
            )
            for k, v in runs.hparams.items()
        }
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        warm = pool.submit(
            _precompile, static, spec, params_like, wave_hparams, by_run, data, monitor, eval_data
        )
        pool.shutdown(wait=False)
    plan = _Plan(static, spec, runs, runs_per_chunk, len(devices), keys, by_run, *shared, warm)
    for w in range(0, len(pending), len(devices)):  # a wave: one chunk per device
        wave = pending[w : w + len(devices)]
        results = _run_wave(plan, [chunks[j] for j in wave], bar)
        for j, (history, params) in zip(wave, results, strict=True):
            parts[j] = (history, params)
            if paths[j] is not None:
                arrays = {"h_" + k: v for k, v in history.items()}
                ckpt.save_arrays(paths[j], {**arrays, **ckpt.tree_to_arrays("p", params)})
    bar.close()

    curves = {k: np.concatenate([h[k] for h, _ in parts]) for k in parts[0][0] if k != "step"}
    params = jax.tree.map(lambda *xs: np.concatenate(xs), *[p for _, p in parts])
    return SweepResult(
        hparams=runs.hparams,
        seeds=runs.seeds,
        steps=np.arange(spec.num_rows, dtype=np.int32) * log_every,
        curves=curves,
        params=params,
        num_devices=len(devices),
    )


def _fingerprint(static, grid, seeds, monitor_size, runs_per_chunk, data, eval_data, init_key):
    """What a checkpoint must agree on (functions by name, the optimizer by a probe)."""
    loss_fn, init_fn, make_optimizer, spec, _ = static.items
    params0 = _init_params(Static(init_fn), init_key)
    hparams0 = {k: jnp.asarray(v[0]) for k, v in grid.items()}
    return {
        "kind": "sweep",
        "functions": [ckpt.function_name(f) for f in (loss_fn, init_fn, make_optimizer)],
        "grid": {k: v.tolist() for k, v in grid.items()},
        "seeds": seeds.tolist(),
        "spec": [
            spec.steps,
            spec.batch_size,
            spec.log_every,
            spec.chunk_size,
            monitor_size,
            spec.divergence_factor,
            runs_per_chunk,
        ],
        "callbacks": [[ckpt.function_name(type(cb)), cb.every] for cb in spec.callbacks],
        "data": ckpt.describe(data),
        "eval_data": None if eval_data is None else ckpt.describe(eval_data),
        "init": ckpt.describe(params0),
        "optimizer": ckpt.describe(_probe(make_optimizer(hparams0), params0)),
    }


def _stacked(like: Any, size: int) -> Any:
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((size, *s.shape), s.dtype), like)


def _precompile(static, spec, params_like, hparams, by_run, data, monitor, eval_data) -> None:
    """Compiles the training program of a wave from abstract values.

    Run in a second thread while the main one sets the runs up (XLA compiles without
    holding the GIL); the first chunk then finds the program in ``jit``'s cache. Best
    effort: a failure here is left to the real call to report (it compiles again).
    """
    try:
        num_runs = jax.tree.leaves(hparams)[0].shape[0]
        params = _stacked(params_like, num_runs)
        state = jax.eval_shape(functools.partial(_init_runs, static), hparams, params, monitor)
        idx = None
        if spec.batch_size is not None:
            idx = jax.ShapeDtypeStruct((num_runs, spec.chunk_size, spec.batch_size), jnp.int32)
        state, idx = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=by_run), (state, idx)
        )
        _chunk.lower(static, state, hparams, idx, 0, data, monitor, eval_data).compile()
    except Exception:  # a failed warm-up only costs the compilation later
        pass


class _Plan(NamedTuple):
    """What every wave of a sweep shares."""

    static: Static
    spec: Spec
    runs: Any  # _grid.make_runs: hparams and seed of every run
    width: int  # runs per chunk (chunks are padded to it)
    num_devices: int
    keys: dict  # seed -> (init_key, data_key)
    by_run: NamedSharding | None  # sharding of the run axis (None on one device)
    data: Any
    monitor: Any
    eval_data: Any
    warm: concurrent.futures.Future  # of _precompile, awaited before the first chunk


def _run_wave(plan: _Plan, chunks: list[np.ndarray], bar) -> list:
    """Trains one chunk of runs per device, each padded to ``plan.width`` runs.

    Every device runs ``vmap`` over ``width`` runs, the same program one device runs for
    one chunk, so the numbers do not depend on the number of devices. Missing chunks
    (fewer than ``num_devices`` left) are filled with copies. Returns, per chunk, its
    history and final parameters as host arrays.
    """
    static, spec, runs, width, num_devices, keys, by_run, data, monitor, eval_data, warm = plan
    padded = [np.concatenate([m, np.full(width - m.size, m[-1])]) for m in chunks]
    padded += [padded[-1]] * (num_devices - len(chunks))
    take = np.concatenate(padded)
    seeds = runs.seeds[take]

    def put(tree):
        return tree if by_run is None else jax.device_put(tree, by_run)

    hparams = put({k: jnp.asarray(v[take]) for k, v in runs.hparams.items()})
    unique, which = np.unique(seeds, return_inverse=True)
    # Initialised once per seed by a small program of its own, compiled once per
    # `init_fn`, not inside the training program (random-number code compiles slowly).
    init_fn = Static(static.items[1])
    params = jax.device_get([_init_params(init_fn, keys[int(s)][0]) for s in unique])
    params = put(jax.tree.map(lambda *xs: np.stack(xs)[which], *params))
    data_words = [key_words(keys[int(s)][1]) for s in unique]
    state = _init(static, hparams, params, monitor)
    warm.result()  # the training program, compiled meanwhile
    num_real = sum(m.size for m in chunks)
    rows = []
    for c in range(spec.num_chunks):
        start = c * spec.chunk_size
        idx = None
        if spec.batch_size is not None:
            per_seed = np.stack(
                [
                    minibatch_indices(w, start, spec.chunk_size, spec.num_examples, spec.batch_size)
                    for w in data_words
                ]
            )
            idx = put(jnp.asarray(per_seed[which]))
        state, chunk_rows = _chunk(static, state, hparams, idx, start, data, monitor, eval_data)
        rows.append(jax.device_get(chunk_rows))
        done = min(start + spec.chunk_size, spec.steps) - min(start, spec.steps)
        bar.update(num_real * done)
    history = assemble_history(rows, spec, axis=1)
    params = jax.device_get(state.params)
    out = []
    for i, m in enumerate(chunks):
        sl = slice(i * width, i * width + m.size)
        out.append(
            (
                {k: v[sl] for k, v in history.items() if k != "step"},
                jax.tree.map(lambda x, sl=sl: np.asarray(x)[sl], params),
            )
        )
    return out
