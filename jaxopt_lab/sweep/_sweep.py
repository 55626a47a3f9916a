"""``sweep``: every grid combination x every seed, vmapped and sharded over devices."""

from __future__ import annotations

import concurrent.futures
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

from jaxopt_lab import _loop
from jaxopt_lab._loop import checkpoint as ckpt
from jaxopt_lab._loop import checks, programs
from jaxopt_lab.distributed import _collectives as collectives
from jaxopt_lab.sweep import _grid
from jaxopt_lab.sweep._result import SweepResult


def sweep(
    loss_fn: Callable[..., jax.Array],
    init_fn: Callable[[jax.Array], Any],
    make_optimizer: Callable[[Mapping[str, jax.Array]], optax.GradientTransformation],
    grid: Mapping[str, Sequence[float]],
    data: Any,
    *,
    steps: int,
    seeds: int | Sequence[int] = 1,
    batch_size: int | None = None,
    eval_data: Any = None,
    has_state: bool = False,
    wrt: Any = None,
    log_every: int = 1,
    callbacks: Sequence[_loop.Callback] = (),
    monitor_size: int = 1024,
    divergence_factor: float | None = 10.0,
    max_parallel: int | None = None,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    keep_params: bool = True,
    memory_budget: int | None = None,
    early_stopping: _loop.EarlyStopping | None = None,
    throw: bool = False,
) -> SweepResult:
    """Trains every combination of ``grid`` with every seed, in one compiled program.

    Each run is a :func:`jaxopt_lab.train` run (the same step, under ``jax.vmap``): run
    ``(hparams, seed)`` equals, to float32 rounding, ``train(loss_fn, init_fn(init_key),
    make_optimizer(hparams), data, key=data_key, ...)`` with ``init_key, data_key =
    jaxopt_lab.sweep.seed_keys(seed)`` (import it with ``from jaxopt_lab.sweep import
    seed_keys``); see ``train`` for the history, the step semantics and the three kinds
    of model: ``init_fn(key)`` may return a pytree of parameters, a Flax NNX module
    (each seed builds its own, so initial weights and Dropout streams differ by seed), or
    with ``has_state=True`` a pair ``(params, state)`` for
    ``loss_fn(params, state, batch, key) -> (loss, new_state)``.
    ``make_optimizer`` is called with traced scalars inside the vmapped program, so one
    compilation serves the whole grid; a later sweep that computes the same program (a
    new but identical ``lambda``, a grid of nearby size) reuses it.

    Runs are ordered combination-major (``itertools.product`` over the grid's keys in
    order), seed-minor, and split into balanced chunks of at most ``max_parallel`` runs,
    each padded to one of a few widths (1, 2, 3, 4, 6, 8, 12, 16, ...; the padding lanes
    repeat a run and are never reported). A device trains one chunk at a time with
    ``vmap``; with several devices, chunks are sharded over a 1-D ``"runs"`` mesh with
    ``shard_map``, one chunk per device. Every device then runs the very program a
    single device runs for a chunk: for the same number of runs and ``max_parallel``
    (the same width) a run's results are bitwise identical on any number of devices,
    whatever the other runs of its chunk, and after a resume. Across widths and against
    ``train`` they agree to float32 rounding only: XLA orders the sums of matrix
    products and reductions by the batch width.

    A diverged run (a non-finite value, or a monitoring loss above ``divergence_factor``
    times the magnitude of its initial value) is frozen and flagged
    (``SweepResult.diverged``); the other runs are unaffected.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (or as above for NNX modules and
        models with state).
      init_fn: ``init_fn(key) -> params`` (or a module, or ``(params, state)``), compiled
        and called once per seed (with that seed's ``init_key``); runs with the same
        seed start from the same point.
      make_optimizer: ``make_optimizer(hparams) -> optax.GradientTransformation`` where
        ``hparams`` maps every grid key to a traced scalar. It must read every key.
      grid: hyperparameter name -> non-empty list of numbers (every combination is
        trained), or a sample of trials: a list of dicts name -> number, e.g.
        ``jol.search.space(...).quasirandom(27, seed=0)`` (one run per trial and seed,
        in the order given).
      data: a pytree of arrays sharing a leading axis.
      steps: updates per run, ``>= 1``.
      seeds: the number of seeds (``0, ..., seeds - 1``) or a list of seeds.
      batch_size: examples per update, or ``None`` for full batch.
      eval_data: optional validation data.
      has_state: ``init_fn`` returns ``(params, state)`` of a functional model.
      wrt: NNX only: the filter of the trained variables (default ``nnx.Param``).
      log_every: one history row every ``log_every`` steps; must divide ``steps``.
      callbacks: :class:`jaxopt_lab.train.Callback` s, evaluated in every run.
      monitor_size: examples in the fixed monitoring subset for ``train_loss``.
      divergence_factor: the bound on ``train_loss / |initial train_loss|`` (``None``:
        only non-finite values count as divergence).
      max_parallel: the most runs one device trains at once (a memory bound). The
        default, ``ceil(runs / devices)``, gives every device one chunk; pass it
        explicitly for results that do not depend on the number of devices.
        ``"auto"``: the most that fit in ``memory_budget``, by XLA's memory analysis of
        the compiled training program (``compiled.memory_analysis()``: arguments,
        outputs less donated buffers, temporaries) at widths 1 and 2, extrapolated and
        checked by compiling the chosen width; ``SweepResult.memory_plan`` says what was
        chosen. It costs two or three compilations.
      chunk_size: steps per compiled call (default about ``steps / 20``).
      devices: the devices to shard over (default ``jax.devices()``).
      progress: show a tqdm progress bar.
      checkpoint_dir: if given, every finished chunk of runs is saved there with
        orbax-checkpoint; calling again with the same arguments loads finished chunks
        instead of recomputing them. The directory records what the runs compute (the
        lowered training program's text, so every fixed hyperparameter, schedule and
        loss body counts; the grid, seeds and data by content) and refuses a call that
        computes something else (``ValueError``), as well as chunks it cannot vouch
        for; a damaged chunk is named in a warning and recomputed. One process writes
        it at a time (an OS file lock): another with other arguments is refused, one
        with the same arguments waits and then loads what the first saved.
      keep_params: return (and gather from every process) the final parameters and
        model state of every run; ``False`` keeps only the curves and the table, for
        sweeps whose parameters would not fit on one host.
      memory_budget: with ``max_parallel="auto"``, bytes per device the training
        program may use (default: 80% of the device's free memory; for CPU devices,
        the host's available memory shared among them).
      early_stopping: ``jol.train.EarlyStopping(...)``: each run stops on its own after
        ``patience`` logged rows without improvement (``curves["stopped"]``,
        ``curves["best_step"]``), as in :func:`jaxopt_lab.train`; the returned ``params``
        (and ``state``) are then each run's best, from its ``best_step``.
      throw: raise :class:`jaxopt_lab.DivergedError` naming the diverged runs (after
        every run has finished).

    Several processes: in a program that called ``jax.distributed.initialize`` (or
    :func:`jaxopt_lab.distributed.initialize`), the ``"runs"`` mesh spans every
    process's devices (``jax.devices()``); each process builds and trains only the runs
    on its own devices, then every process receives the whole result, bitwise equal to
    one process with as many devices. Every process must pass the same arguments
    (checked: a different grid is refused by name); only process 0 shows progress.
    With ``checkpoint_dir`` (on a file system every process sees), each process saves
    its own runs, and the directory resumes on any number of processes and devices
    (with the same ``max_parallel``).

    Returns:
      A :class:`SweepResult`.

    Raises:
      TypeError: naming the argument, for one of the wrong type (e.g. ``steps="4"``,
        ``max_parallel=2.0``; NumPy integers are counts like Python ones).
      ValueError: naming the argument: an empty grid, a grid key ``make_optimizer``
        does not read, arrays with different leading axes, ``batch_size`` larger than
        the data, ``steps <= 0``, ...
      DivergedError: with ``throw=True``, when any run diverged.

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
    setup = _setup(
        loss_fn,
        init_fn,
        make_optimizer,
        grid,
        data,
        steps=steps,
        seeds=seeds,
        batch_size=batch_size,
        eval_data=eval_data,
        has_state=has_state,
        wrt=wrt,
        log_every=log_every,
        callbacks=callbacks,
        monitor_size=monitor_size,
        divergence_factor=divergence_factor,
        max_parallel=max_parallel,
        chunk_size=chunk_size,
        devices=devices,
        checkpoint_dir=checkpoint_dir,
        keep_params=keep_params,
        memory_budget=memory_budget,
        early_stopping=early_stopping,
    )
    plan, first_key, auto, directory = setup.plan, setup.first_key, setup.auto, setup.directory
    grid, product, seed_list = setup.grid, setup.product, setup.seed_list
    static, builder, model = plan.static, plan.builder, setup.model
    spec, data, eval_data = static.spec, plan.data, plan.eval_data
    monitor_size, layout = setup.monitor_size, plan.layout
    if auto:  # the widest chunk whose compiled program fits the memory budget
        plan = _fit_memory(plan, first_key, devices, memory_budget)
        layout = plan.layout
    store = None
    if directory is not None:
        ckpt.preload()
        if ckpt.recorded_items(directory) < len(layout.chunks):  # likely work to do:
            # compile meanwhile (XLA does not hold the GIL while the fingerprint is taken)
            plan = plan._replace(warm=_precompile(plan, first_key))
        start = jax.device_get(programs.build(builder, first_key))
        init_args, train_args = _one_run(plan, *_abstract_args(plan, first_key))
        meta = ckpt.fingerprint(
            "sweep",
            programs={
                "build": programs.build.text_hash(builder, first_key),
                "init": programs.init_one.text_hash(static, *init_args),
                "train": programs.train_one.text_hash(static, *train_args),
            },
            model_kind=model.kind,
            spec=spec,
            monitor_size=monitor_size,
            data=data,
            eval_data=eval_data,
            start=start,
            grid={k: v.tolist() for k, v in grid.items()},
            **({} if product else {"trials": True}),
            seeds=seed_list.tolist(),
            runs_per_chunk=layout.runs_per_chunk,
            **({} if keep_params else {"keep_params": False}),
        )
        store = _Store(ckpt.Directory.open(directory, meta), start, keep_params)
    try:
        return _sweep(plan, first_key, store, progress=progress, throw=throw)
    finally:
        if store is not None:
            store.directory.close()


class _Setup(NamedTuple):
    """A checked sweep, ready to train: what ``sweep`` and ``tune`` share."""

    plan: _Plan
    first_key: Any  # the first seed's init key (abstract shapes are taken from it)
    grid: dict  # name -> (values,) of the grid, or of the trials
    product: bool  # the grid's product (else a list of trials, one run each)
    seed_list: np.ndarray
    model: Any
    monitor_size: int
    auto: bool  # max_parallel="auto"
    directory: Any  # the checked checkpoint_dir, or None


def _setup(
    loss_fn,
    init_fn,
    make_optimizer,
    grid,
    data,
    *,
    steps,
    seeds,
    batch_size,
    eval_data,
    has_state,
    wrt,
    log_every,
    callbacks,
    monitor_size,
    divergence_factor,
    max_parallel,
    chunk_size,
    devices,
    checkpoint_dir,
    keep_params,
    memory_budget,
    early_stopping=None,
) -> _Setup:
    """Checks the arguments of a sweep (by name) and builds its plan; trains nothing."""
    product = isinstance(grid, Mapping)  # else a sample of trials: one run per trial
    grid = _grid.check_grid(grid) if product else _grid.check_trials(grid)
    seed_list = _grid.check_seeds(seeds)
    n = checks.leading_axis("data", data)
    spec = checks.build_spec(
        steps=steps,
        num_examples=n,
        batch_size=batch_size,
        log_every=log_every,
        chunk_size=chunk_size,
        divergence_factor=divergence_factor,
        callbacks=callbacks,
        early_stopping=early_stopping,
        has_eval_data=eval_data is not None,
    )
    if eval_data is not None:
        checks.leading_axis("eval_data", eval_data)
        checks.check_like("eval_data", eval_data, data, "data")
    monitor_size = checks.check_monitor_size(monitor_size)
    checks.check_function("make_optimizer", make_optimizer)
    directory = None if checkpoint_dir is None else ckpt.check_directory(checkpoint_dir)
    keys = {int(s): _grid.seed_keys(int(s)) for s in seed_list}
    first_key = keys[int(seed_list[0])][0]
    model = _loop.model_from_init(loss_fn, init_fn, has_state, wrt, first_key)
    _grid.check_make_optimizer(make_optimizer, lambda k: model.split(init_fn(k))[0], grid)
    if not isinstance(keep_params, bool):
        raise TypeError(f"`keep_params` must be True or False, got {keep_params!r}.")
    auto = _check_memory_arguments(max_parallel, memory_budget)
    runs = _grid.make_runs(grid, seed_list, product=product)
    if collectives.multiprocess():  # every process must sweep the same runs
        collectives.agree(
            "jol.sweep",
            {
                "grid": {k: v.tolist() for k, v in grid.items()},
                "trials": not product,
                "seeds": seed_list.tolist(),
                "steps": spec.steps,
                "batch_size": spec.batch_size,
                "log_every": spec.log_every,
                "chunk_size": spec.chunk_size,
                "divergence_factor": spec.divergence_factor,
                "callbacks": [type(cb).__qualname__ for cb in spec.callbacks],
                "early_stopping": repr(spec.early_stopping),
                "monitor_size": monitor_size,
                "max_parallel": max_parallel,
                "memory_budget": memory_budget,
                "devices": None if devices is None else [d.id for d in devices],
                "has_state": has_state,
                "keep_params": keep_params,
                "checkpoint_dir": None if directory is None else str(directory),
                "data": ckpt.describe(data),
                "eval_data": None if eval_data is None else ckpt.describe(eval_data),
            },
        )
    layout = _Layout.of(runs.seeds.size, devices, None if auto else max_parallel)

    mesh = layout.mesh
    # A new but identical `make_optimizer` finds the program compiled for the first one.
    abstract_hparams = {k: jax.ShapeDtypeStruct((), v.dtype) for k, v in grid.items()}
    abstract_params, abstract_state = jax.eval_shape(lambda k: model.split(init_fn(k)), first_key)
    checks.check_loss(model, abstract_params, abstract_state, data, spec.batch_size or n)
    same_optimizer = _loop.canonical(
        make_optimizer, _loop.probe_optimizer_factory, abstract_hparams, abstract_params
    )
    static = _loop.Static(
        model=model,
        make_optimizer=same_optimizer,
        spec=spec,
        mesh=mesh,
        shared_batches=seed_list.size == 1,  # every run draws the same minibatches
    )
    builder = _loop.Static(model=model, init_fn=init_fn)
    replicated = None if mesh is None else NamedSharding(mesh, P())
    monitor = _put(_loop.monitoring_subset(data, n, monitor_size), replicated)
    data = _put(data, replicated)
    eval_data = None if eval_data is None else _put(eval_data, replicated)

    plan = _Plan(
        static=static,
        builder=builder,
        runs=runs,
        layout=layout,
        keys=keys,
        data=data,
        monitor=monitor,
        eval_data=eval_data,
        warm=None,
        keep_params=keep_params,
    )
    return _Setup(plan, first_key, grid, product, seed_list, model, monitor_size, auto, directory)


def _sweep(plan: _Plan, first_key: Any, store: _Store | None, *, progress, throw) -> SweepResult:
    """The sweep proper: chunks loaded from ``store`` or trained, then the result."""
    static, runs, layout = plan.static, plan.runs, plan.layout
    spec, model = static.spec, static.model
    bar = tqdm.auto.tqdm(
        total=runs.seeds.size * spec.steps,
        disable=not progress or not collectives.main_process(),
        unit="run-step",
        desc="sweep",
    )
    parts: list[Any] = [None] * len(layout.chunks)
    for j, members in enumerate(layout.chunks):
        parts[j] = None if store is None else store.load(j, members)
    if store is not None:  # every process resumes the same chunks (those all could read)
        parts = store.agree(parts)
    for j, members in enumerate(layout.chunks):
        if parts[j] is not None:
            bar.update(members.size * spec.steps)
    pending = [j for j, part in enumerate(parts) if part is None]
    if pending and plan.warm is None:
        plan = plan._replace(warm=_precompile(plan, first_key))
    for w in range(0, len(pending), layout.num_devices):  # a wave: one chunk per device
        wave = pending[w : w + layout.num_devices]
        trained = _run_wave(plan, [layout.chunks[j] for j in wave], bar, store)
        for j, part in zip(wave, trained, strict=True):
            parts[j] = part
            if store is not None and not store.collective:
                store.save(j, part)
    bar.close()

    curves = {k: np.concatenate([p.history[k] for p in parts]) for k in parts[0].history}
    result = SweepResult(
        hparams=runs.hparams,
        seeds=runs.seeds,
        steps=np.arange(spec.num_rows, dtype=np.int32) * spec.log_every,
        curves=curves,
        params=_loop.concatenate([p.params for p in parts]) if plan.keep_params else None,
        num_devices=layout.num_devices,
        state=(
            _loop.concatenate([p.state for p in parts])
            if model.has_state and plan.keep_params
            else None
        ),
        model_def=model,
        memory_plan=plan.memory_plan,
    )
    if throw:
        labels = [_loop.describe_run(runs.hparams, runs.seeds, r) for r in range(runs.seeds.size)]
        _loop.raise_if_diverged(curves["diverged"], result.steps, labels=labels, what="sweep")
    return result


def _put(tree: Any, sharding: NamedSharding | None) -> Any:
    tree = _loop.to_device(tree)
    return tree if sharding is None else collectives.place(tree, sharding)


def _stacked(like: Any, size: int, sharding: Any = None) -> Any:
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((size, *s.shape), s.dtype, sharding=sharding), like
    )


def _stacked_like(start: Any, size: int) -> Any:
    """What ``size`` runs from ``start`` look like; PRNG keys as arrays (their impl)."""

    def like(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jnp.stack([x] * size)
        return jax.ShapeDtypeStruct((size, *x.shape), x.dtype)

    return jax.tree.map(like, start)


class _Layout(NamedTuple):
    """How the runs are split: balanced chunks, each padded to ``width`` lanes."""

    chunks: list[np.ndarray]  # run indices of each chunk
    runs_per_chunk: int  # the most runs in a chunk (balanced: sizes differ by at most 1)
    width: int  # lanes per chunk on a device: runs_per_chunk padded to a shared size
    num_devices: int
    mesh: Mesh | None  # 1-D "runs" mesh over the devices; None on one device

    @property
    def lanes(self) -> int:
        """Runs a wave trains at once: one padded chunk per device."""
        return self.width * self.num_devices

    @property
    def by_run(self) -> NamedSharding | None:
        return None if self.mesh is None else NamedSharding(self.mesh, P(programs.RUNS))

    @classmethod
    def of(cls, num_runs: int, devices: Any, max_parallel: Any) -> _Layout:
        given = devices
        if isinstance(given, str) or not all(
            isinstance(d, jax.Device) for d in (given if given is not None else [])
        ):
            raise TypeError(
                f"`devices` must be a list of jax.Device (e.g. jax.devices()), got {given!r}."
            )
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("`devices` is empty; pass None to use jax.devices().")
        explicit = max_parallel is not None
        if not explicit:
            max_parallel = math.ceil(num_runs / len(devices))
        max_parallel = checks.check_count(
            max_parallel, "max_parallel", fix="Pass e.g. 8, or None to train every run at once."
        )
        num_chunks = math.ceil(num_runs / max_parallel)
        per_chunk = math.ceil(num_runs / num_chunks)
        # Padding a chunk to a shared width lets grids of nearby sizes share one program;
        # an explicit max_parallel is a memory bound and caps it.
        width = _loop.padded_width(per_chunk, max_parallel if explicit else 2 * per_chunk)
        chunks = [
            np.arange(j * per_chunk, min((j + 1) * per_chunk, num_runs)) for j in range(num_chunks)
        ]
        mesh = Mesh(np.array(devices), (programs.RUNS,)) if len(devices) > 1 else None
        return cls(chunks, per_chunk, width, len(devices), mesh)


class _Part(NamedTuple):
    """The outcome of one chunk of runs, on the host."""

    history: dict[str, np.ndarray]  # metric -> (runs, rows)
    params: Any  # final trained parameters, leading (runs,) axis
    state: Any  # final model state, leading (runs,) axis; None without


class _Store:
    """The checkpoint of a sweep, in orbax items of finished runs.

    One process saves one item per finished chunk (``runs_JJJJJ``). Several processes
    save one item per wave (``wave_RRRRRR``) together: each writes the lanes of its own
    devices, and the item records which run each lane holds. Either kind is loaded by
    any number of processes and devices, so a sweep resumes on another layout (with the
    same ``max_parallel``, hence the same chunks).
    """

    def __init__(self, directory: ckpt.Directory, start: tuple[Any, Any], keep_params: bool):
        self.directory, self.start, self.keep_params = directory, start, keep_params
        self.collective = collectives.multiprocess()
        self._wave: tuple[str | None, Any] = (None, None)  # the last wave item read

    def _part(self, saved: dict, lanes: Any, size: int) -> _Part:
        saved = {k: v[lanes] for k, v in saved.items() if k != "lane_run"}
        history = {k[2:]: v for k, v in saved.items() if k.startswith("h_")}
        if not self.keep_params:
            return _Part(history, None, None)
        params_like, state_like = self.start
        params = ckpt.tree_from_arrays("p", saved, _stacked_like(params_like, size))
        state = None
        if state_like is not None:
            state = ckpt.tree_from_arrays("m", saved, _stacked_like(state_like, size))
        return _Part(history, params, state)

    def load(self, j: int, members: np.ndarray) -> _Part | None:
        saved = self.directory.load(f"runs_{j:05d}")
        if saved is not None:
            return self._part(saved, slice(None), members.size)
        for name, record in sorted(self.directory.items.items()):
            lane_run = record.get("lane_run", [])
            if not name.startswith("wave_") or not set(members.tolist()) <= set(lane_run):
                continue
            if self._wave[0] != name:
                self._wave = (name, self.directory.load(name))
            if self._wave[1] is not None:
                lanes = np.array([lane_run.index(r) for r in members.tolist()])
                return self._part(self._wave[1], lanes, members.size)
        return None

    def agree(self, parts: list) -> list:
        """Keeps the loaded chunks that every process could load (the others run again)."""
        if not self.collective:
            return parts
        every = collectives.everywhere([p is not None for p in parts])
        return [p if ok else None for p, ok in zip(parts, every, strict=True)]

    def save(self, j: int, part: _Part) -> None:
        arrays = {"h_" + k: v for k, v in part.history.items()}
        arrays.update(ckpt.tree_to_arrays("p", part.params))
        if part.state is not None:
            arrays.update(ckpt.tree_to_arrays("m", part.state))
        self.directory.save(f"runs_{j:05d}", arrays)

    def save_wave(
        self, chunks: list[np.ndarray], take: np.ndarray, width: int, history: dict, final, host
    ) -> None:
        """Saves a wave's runs from every process at once (each writes its own lanes)."""
        lane_run = np.full(take.size, -1, np.int32)  # -1: a padding lane
        for i, m in enumerate(chunks):
            lane_run[i * width : i * width + m.size] = m
        arrays = {"h_" + k: v for k, v in history.items() if k != "step"}
        arrays["lane_run"] = lane_run
        on_host = dict(arrays)
        for prefix, tree, fetched in zip("pm", final, host, strict=True):
            if tree is not None:
                arrays.update(_global_arrays(prefix, tree))
                on_host.update(ckpt.tree_to_arrays(prefix, fetched))
        self.directory.save_collective(
            f"wave_{int(chunks[0][0]):06d}", arrays, on_host, lane_run=lane_run.tolist()
        )


def _global_arrays(prefix: str, tree: Any) -> dict[str, jax.Array]:
    """``ckpt.tree_to_arrays`` for arrays that span processes: they stay on the devices."""
    return {
        f"{prefix}{i:05d}": jax.random.key_data(x) if _loop.is_key(x) else x
        for i, x in enumerate(jax.tree.leaves(tree))
    }


class _Plan(NamedTuple):
    """What every wave of a sweep shares."""

    static: _loop.Static  # of the training program: model, make_optimizer, spec, mesh
    builder: _loop.Static  # of the program building a seed's start: model, init_fn
    runs: _grid.Runs  # hparams and seed of every run
    layout: _Layout
    keys: dict  # seed -> (init_key, data_key)
    data: Any
    monitor: Any
    eval_data: Any
    warm: concurrent.futures.Future | None  # of _precompile, awaited before the first chunk
    keep_params: bool = True  # fetch (and save) the final parameters of every run
    memory_plan: dict | None = None  # max_parallel="auto": what was chosen, and why


def _check_memory_arguments(max_parallel: Any, memory_budget: Any) -> bool:
    """Whether ``max_parallel`` is ``"auto"``; refuses a budget without it, by name."""
    auto = isinstance(max_parallel, str) and max_parallel == "auto"
    if isinstance(max_parallel, str) and not auto:
        raise TypeError(
            f"`max_parallel` must be a whole number, None or 'auto', got {max_parallel!r}."
        )
    if memory_budget is not None:
        checks.check_count(
            memory_budget, "memory_budget", fix="Pass bytes per device, e.g. 2 * 2**30."
        )
        if not auto:
            raise ValueError(
                f"`memory_budget`={memory_budget} applies to max_parallel='auto' only (got "
                f"max_parallel={max_parallel!r}); pass max_parallel='auto', or drop it."
            )
    return auto


def free_memory(device: jax.Device) -> int:
    """Bytes free on ``device`` now: its allocator's limit less what is in use (GPU,
    TPU), or for CPU devices the host's available memory shared by its CPU devices."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return available // max(1, len(jax.local_devices(backend=device.platform)))


#: the share of free memory ``max_parallel="auto"`` plans for when given no budget
MEMORY_FRACTION = 0.8


def _program_bytes(plan: _Plan, key: Any) -> int:
    """Bytes one device needs for a wave's training program, from XLA's analysis."""
    _, args = _abstract_args(plan, key)
    stats = programs.train_runs.executable(plan.static, *args).memory_analysis()
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        - stats.alias_size_in_bytes
        + stats.temp_size_in_bytes
    )


def _fit_memory(plan: _Plan, key: Any, devices: Any, budget: int | None) -> _Plan:
    """The plan with the widest chunk whose compiled program fits ``budget`` per device.

    The program's memory (arguments, outputs less donated buffers, temporaries: XLA's
    ``compiled.memory_analysis()``) is measured at widths 1 and 2, extrapolated
    linearly to the widest width that fits, and checked there by compiling it; widths
    are lowered until one fits. With several processes, all take the smallest choice.
    """
    num_runs = plan.runs.seeds.size
    device = (list(devices) if devices is not None else jax.devices())[0]
    if budget is None:
        budget = int(MEMORY_FRACTION * free_memory(device))

    def at(width: int) -> tuple[_Plan, int]:
        trial = plan._replace(layout=_Layout.of(num_runs, devices, width))
        return trial, _program_bytes(trial, key)

    most = math.ceil(num_runs / plan.layout.num_devices)
    one, bytes_one = at(1)
    if bytes_one > budget:
        raise ValueError(
            f"`memory_budget`: one run's training program needs {bytes_one:,} bytes per "
            f"device, more than the budget of {budget:,}; raise it (or shrink the model, "
            "batch_size or chunk_size)."
        )
    width = 1
    if most > 1:
        _, bytes_two = at(2)
        per_run = max(bytes_two - bytes_one, 1)
        width = int(min(most, 1 + (budget - bytes_one) // per_run))
    best = (one, bytes_one, 1)
    while width > 1:
        trial, used = at(width)
        if used <= budget:
            best = (trial, used, width)
            break
        width = max(1, min(width - 1, int(width * budget / used)))
    width = collectives.smallest(best[2])
    chosen, used = (best[0], best[1]) if width == best[2] else at(width)
    memory_plan = {
        "max_parallel": width,
        "bytes_per_device": used,
        "budget": budget,
        "bytes_one_run": bytes_one,
    }
    return chosen._replace(memory_plan=memory_plan)


def _abstract_args(plan: _Plan, key: Any) -> tuple[tuple, tuple]:
    """Abstract arguments of a wave's programs (what ``_run_wave`` passes): init, train."""
    static, builder, layout, runs = plan.static, plan.builder, plan.layout, plan.runs
    data, monitor, eval_data = plan.data, plan.monitor, plan.eval_data
    lanes, by_run = layout.lanes, layout.by_run
    hparams = {
        k: jax.ShapeDtypeStruct((lanes,), jnp.asarray(v[:1]).dtype, sharding=by_run)
        for k, v in runs.hparams.items()
    }
    # The programs' Python functions, not the programs: nothing is compiled here.
    params, model_state = jax.eval_shape(lambda k: programs.build.__wrapped__(builder, k), key)
    keys = None
    if static.model.uses_key:
        keys = jax.ShapeDtypeStruct((lanes,), jax.random.key(0).dtype, sharding=by_run)
    start = (_stacked(params, lanes, by_run), _stacked(model_state, lanes, by_run))
    init_args = (hparams, *start, keys, monitor)
    state = jax.eval_shape(lambda *a: programs.init_runs.__wrapped__(static, *a), *init_args)
    idx = None
    if static.spec.batch_size is not None:
        shape = (static.spec.chunk_size, static.spec.batch_size)
        if static.shared_batches:
            replicated = None if layout.mesh is None else NamedSharding(layout.mesh, P())
            idx = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=replicated)
        else:
            idx = jax.ShapeDtypeStruct((lanes, *shape), jnp.int32, sharding=by_run)
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=by_run), state)
    start_step = jax.ShapeDtypeStruct((), jnp.int32)
    return init_args, (state, hparams, idx, start_step, data, monitor, eval_data)


def _one_run(plan: _Plan, init_args: tuple, train_args: tuple) -> tuple[tuple, tuple]:
    """The arguments of one run's programs: no run axis, no sharding (no devices)."""

    def plain(tree, drop=0):
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[drop:], s.dtype), tree)

    hparams, params, model_state, keys, monitor = init_args
    state, _, idx, start_step, data, _, eval_data = train_args
    idx = plain(idx, drop=0 if plan.static.shared_batches else 1)
    data, monitor, eval_data, start_step = plain((data, monitor, eval_data, start_step))
    init = (*plain((hparams, params, model_state, keys), drop=1), monitor)
    train = (plain(state, 1), plain(hparams, 1), idx, start_step, data, monitor, eval_data)
    return init, train


def _precompile(plan: _Plan, key: Any) -> concurrent.futures.Future:
    """Compiles the training program of a wave from abstract values, in a second thread.

    XLA compiles without holding the GIL, so this overlaps with setting the runs up;
    the first chunk then finds the program in the cache. Best effort: a failure here is
    left to the real call to report (it compiles again).
    """

    def compile_wave():
        try:
            _, args = _abstract_args(plan, key)
            programs.train_runs.executable(plan.static, *args)
        except Exception:  # a failed warm-up only costs the compilation later
            pass

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(compile_wave)
    pool.shutdown(wait=False)
    return future


def _chunk_indices(plan: _Plan, words: list, which: np.ndarray, start: int) -> Any:
    """The minibatch indices of a chunk, placed: per run, or shared by every run."""
    spec, layout = plan.static.spec, plan.layout
    if spec.batch_size is None:
        return None
    if plan.static.shared_batches:
        idx = jnp.asarray(_loop.chunk_indices(spec, words, None, start))
        replicated = None if layout.mesh is None else NamedSharding(layout.mesh, P())
        return idx if replicated is None else collectives.place(idx, replicated)
    idx = jnp.asarray(_loop.chunk_indices(spec, words, which, start))
    return idx if layout.by_run is None else collectives.place(idx, layout.by_run)


def _run_wave(plan: _Plan, chunks: list[np.ndarray], bar, store: _Store | None) -> list[_Part]:
    """Trains one chunk of runs per device, each padded to ``layout.width`` lanes.

    Missing chunks (fewer than ``num_devices`` left) are filled with copies; the padding
    lanes repeat the chunk's last run and are dropped from the result.
    """
    layout, runs, static = plan.layout, plan.runs, plan.static
    width = layout.width
    padded = [np.concatenate([m, np.full(width - m.size, m[-1])]) for m in chunks]
    padded += [padded[-1]] * (layout.num_devices - len(chunks))
    take = np.concatenate(padded)
    seeds = runs.seeds[take]

    def put(tree):
        return tree if layout.by_run is None else collectives.place(tree, layout.by_run)

    hparams = put({k: jnp.asarray(v[take]) for k, v in runs.hparams.items()})
    unique, which = np.unique(seeds, return_inverse=True)
    if layout.by_run is not None and collectives.multiprocess():
        params, model_state = _local_starts(plan, seeds)
    else:
        starts = [programs.build(plan.builder, plan.keys[int(s)][0]) for s in unique]
        starts = jax.device_get(starts)
        params, model_state = put(_loop.stack_take(starts, which))
    keys = None
    if static.model.uses_key:
        data_keys = [_loop.typed_key(plan.keys[int(s)][1]) for s in seeds]
        keys = put(jax.random.wrap_key_data(jnp.stack([jax.random.key_data(k) for k in data_keys])))
    run = programs.init_runs(static, hparams, params, model_state, keys, plan.monitor)
    if plan.warm is not None:
        plan.warm.result()  # the training program, compiled meanwhile
    data_words = [_loop.key_words(plan.keys[int(s)][1]) for s in unique]
    num_real = sum(m.size for m in chunks)
    run, rows = _loop.run_chunks(
        lambda run, start, idx: programs.train_runs(
            static, run, hparams, idx, start, plan.data, plan.monitor, plan.eval_data
        ),
        run,
        static.spec,
        indices=lambda start: _chunk_indices(plan, data_words, which, start),
        progress=lambda steps: bar.update(num_real * steps),
        gather_at_end=collectives.multiprocess(),
    )
    history = _loop.assemble_history(rows, static.spec, axis=1)
    on_devices = (None, None)
    if plan.keep_params:  # with early stopping, each run's best point
        best = run.best
        on_devices = (
            (run.params, run.model_state) if best is None else (best.params, best.model_state)
        )
    final = collectives.fetch(on_devices)  # every process gets every run
    if store is not None and store.collective:  # each process saves its own runs
        store.save_wave(chunks, take, width, history, on_devices, final)
    out = []
    for i, m in enumerate(chunks):
        lanes = slice(i * width, i * width + m.size)
        params, state = _loop.host_take(final, lanes)
        out.append(_Part({k: v[lanes] for k, v in history.items() if k != "step"}, params, state))
    return out


def _local_starts(plan: _Plan, seeds: np.ndarray) -> tuple[Any, Any]:
    """The starting points of a wave's lanes, built only for this process's lanes.

    Each process builds (``init_fn``) the seeds of the runs on its own devices and
    contributes them to one global array sharded by run: no process builds another's.
    """
    by_run, lanes = plan.layout.by_run, seeds.size
    starts: dict[int, list] = {}  # seed -> the leaves of its start, on the host

    def build(seed: int) -> Any:
        return jax.device_get(programs.build(plan.builder, plan.keys[seed][0]))

    def start_of(seed: int) -> list:
        if seed not in starts:
            starts[seed] = jax.tree.leaves(build(seed))
        return starts[seed]

    def words(x: Any) -> np.ndarray:
        return np.asarray(jax.random.key_data(x) if _loop.is_key(x) else x)

    mine = by_run.addressable_devices_indices_map((lanes,))
    first = int(seeds[range(*next(iter(mine.values()))[0].indices(lanes))[0]])
    starts[first], treedef = jax.tree.flatten(build(first))
    out = []
    for i, ref in enumerate(start_of(first)):

        def piece(index, i=i):
            rows = range(*index[0].indices(lanes))
            return np.stack([words(start_of(int(seeds[r]))[i]) for r in rows])

        leaf = jax.make_array_from_callback((lanes, *words(ref).shape), by_run, piece)
        if _loop.is_key(ref):
            leaf = jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(ref))
        out.append(leaf)
    return jax.tree.unflatten(treedef, out)
