"""``tune``: synchronous successive halving of a sample of trials, on the sweep engine."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm.auto

from jaxopt_lab import _loop, _validation
from jaxopt_lab._loop import programs
from jaxopt_lab.distributed import _collectives as collectives
from jaxopt_lab.search import Space
from jaxopt_lab.sweep import _sweep
from jaxopt_lab.sweep._result import SweepResult

METRICS = ("val_loss", "train_loss")


class Rung(NamedTuple):
    """One rung of successive halving."""

    steps: int  # every run of the rung has trained this many steps at its end
    trials: np.ndarray  # indices of the trials trained in the rung
    score: np.ndarray  # (trials,) the metric at ``steps``, mean over seeds; inf: dropped
    kept: np.ndarray  # indices of the trials promoted to the next rung (the best at the end)


class TuneResult(NamedTuple):
    """What :func:`tune` found and what it spent.

    ``sweep`` holds every run (trial x seed, trial-major) as a :class:`SweepResult`:
    a run stopped at a rung has ``NaN`` in its float curves after that rung's last row.
    """

    trials: list[dict[str, float]]  # the sample, in order
    sweep: SweepResult  # every run's curves; params of the runs that reached the end
    rungs: list[Rung]
    stopped: np.ndarray  # (runs,) steps each run trained (``budget_steps`` for finalists)
    metric: str
    run_steps: int  # run-steps trained (padding lanes not counted)
    full_run_steps: int  # run-steps of training every trial for ``budget_steps``
    best_trial: int  # index into ``trials``; -1 if every trial was dropped
    seconds: float  # wall time of the call
    finalists: np.ndarray  # the runs that trained to ``budget_steps``
    params: Any  # their final parameters, leading (finalists,) axis; None if none
    state: Any = None  # their final model state (stateful and NNX models)

    @property
    def best(self) -> dict[str, Any]:
        """The best trial: its index, hyperparameters and final score (mean over seeds)."""
        if self.best_trial < 0:
            return {"trial": -1, "score": math.inf}
        last = self.rungs[-1]
        at = int(np.flatnonzero(last.trials == self.best_trial)[0])
        return {"trial": self.best_trial, **self.trials[self.best_trial], "score": last.score[at]}

    @property
    def savings(self) -> float:
        """``run_steps / full_run_steps``: the share of the full grid's work spent."""
        return self.run_steps / self.full_run_steps

    def format(self) -> str:
        """One line per rung: steps, trials trained, the best score, trials kept."""
        lines = [f"successive halving on {self.metric}: {len(self.trials)} trials"]
        for i, rung in enumerate(self.rungs):
            finite = rung.score[np.isfinite(rung.score)]
            best = f"{finite.min():.4g}" if finite.size else "-"
            lines.append(
                f"  rung {i}: {rung.trials.size:3d} trials to step {rung.steps:6d}, best "
                f"{best}, dropped {int((~np.isfinite(rung.score)).sum())}, kept {rung.kept.size}"
            )
        lines.append(
            f"  run-steps {self.run_steps:,} of {self.full_run_steps:,} for the full grid "
            f"({self.savings:.1%}); best trial {self.best_trial}: "
            + ", ".join(f"{k}={v:.4g}" for k, v in self.best.items() if k != "trial")
        )
        return "\n".join(lines)


def rung_schedule(
    num_trials: int, budget_steps: int, eta: int, min_steps: int | None, log_every: int
) -> tuple[list[int], list[int]]:
    """The steps at the end of each rung and the trials each rung trains.

    Without ``min_steps``, there are ``1 + floor(log_eta(num_trials))`` rungs, rung ``i``
    ending at ``budget_steps * eta**(i - last)`` (Li et al. 2018, one bracket of
    Hyperband); with it, rung ``i`` ends at ``min_steps * eta**i`` until the budget. Rung
    ends are rounded to multiples of ``log_every`` (rungs that would coincide merge).
    Rung ``i + 1`` trains ``max(1, n_i // eta)`` trials.
    """
    if min_steps is None:
        last = math.floor(math.log(num_trials) / math.log(eta) + 1e-9)
        raw = [budget_steps * eta ** (i - last) for i in range(last + 1)]
    else:
        raw = [min_steps]
        while raw[-1] * eta < budget_steps:
            raw.append(raw[-1] * eta)
        raw.append(budget_steps)
    ends: list[int] = []
    for r in raw:
        end = min(budget_steps, max(log_every, round(r / log_every) * log_every))
        if not ends or end > ends[-1]:
            ends.append(end)
    ends[-1] = budget_steps
    counts = [num_trials]
    for _ in ends[1:]:
        counts.append(max(1, counts[-1] // eta))
    return ends, counts


def tune(
    loss_fn: Callable[..., jax.Array],
    init_fn: Callable[[jax.Array], Any],
    make_optimizer: Callable[[Mapping[str, jax.Array]], optax.GradientTransformation],
    space: Space | Sequence[Mapping[str, float]],
    data: Any,
    *,
    budget_steps: int,
    trials: int | None = None,
    eta: int = 3,
    min_steps: int | None = None,
    metric: str = "val_loss",
    seeds: int | Sequence[int] = 1,
    sampler: str = "quasirandom",
    sample_seed: int = 0,
    batch_size: int | None = None,
    eval_data: Any = None,
    has_state: bool = False,
    wrt: Any = None,
    log_every: int = 1,
    chunk_size: int | None = None,
    monitor_size: int = 1024,
    divergence_factor: float | None = 10.0,
    max_parallel: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
) -> TuneResult:
    r"""Successive halving: train every trial a little, keep the best ``1/eta``, repeat.

    Synchronous successive halving (Jamieson & Talwalkar 2016; one bracket of Hyperband,
    Li et al. 2018): rung 0 trains all ``n`` trials (each with every seed) to ``r_0``
    steps; the trials are ranked by ``metric`` at that step (the mean over seeds), a
    trial with a diverged seed is dropped at once, and the best ``max(1, n // eta)`` are
    continued from their exact state (parameters, optimizer state, model state, RNG
    stream, divergence flags) to ``r_1 = eta r_0`` steps, in a smaller program; and so on
    until ``budget_steps``. Every rung is one vmapped program over the surviving runs
    (on several devices, sharded like :func:`jaxopt_lab.sweep`); the data order of a run
    depends only on its seed and step, so a survivor trains on the very minibatches it
    would have seen in one uninterrupted run.

    The work spent is :math:`S \sum_i n_i (r_i - r_{i-1})` run-steps (``run_steps``)
    against :math:`S\,n\,R` for training every trial to the end (``full_run_steps``),
    ``S`` seeds, ``n_i`` the trials of rung ``i``: with ``eta = 3`` and ``n = 27``,
    rungs of 27, 9, 3 and 1 trials to ``R/27``, ``R/9``, ``R/3`` and ``R`` steps spend
    :math:`(27 + 9 \cdot 2 + 3 \cdot 6 + 18) R / 27 = 81 R/27`, 11% of ``27 R``.

    A run's curves are those of the same trial in a :func:`jaxopt_lab.sweep` of the
    trials to ``budget_steps`` steps: bitwise when every rung's program has the same
    width, which ``max_parallel=w`` fixes (every rung's chunks are padded to the width
    the sweep's ``max_parallel=w`` gives its chunks); with ``max_parallel=None`` each
    rung's program is as narrow as its runs and XLA may round differently across widths
    (to float32 rounding).

    Args:
      loss_fn, init_fn, make_optimizer, data: as for :func:`jaxopt_lab.sweep`.
      space: a :class:`jaxopt_lab.search.Space` (sampled: ``trials`` points with
        ``sampler`` and ``sample_seed``), or a list of trials (dicts name -> value).
      budget_steps: the steps a finalist trains (``R``).
      trials: the number of trials to sample from ``space`` (required with a space).
      eta: the reduction factor, an integer ``>= 2``.
      min_steps: the steps of rung 0 (default: ``R / eta**k`` for ``k`` halvings down
        to one trial).
      metric: ``"val_loss"`` (``eval_data`` required) or ``"train_loss"`` (the fixed
        monitoring subset), in evaluation mode; lower is better.
      seeds: seeds per trial (``0, ..., seeds - 1``) or a list.
      sampler: ``"quasirandom"`` (scrambled Halton) or ``"random"``.
      sample_seed: the seed of the sampler.
      log_every: one history row every ``log_every`` steps; divides ``budget_steps``.
      chunk_size: steps per compiled call; must divide every rung's end (default: their
        greatest common divisor).
      max_parallel: the most runs a device trains at once, and with it the width of
        every rung's program (see above).
      batch_size, eval_data, has_state, wrt, monitor_size, divergence_factor, devices,
      progress: as for :func:`jaxopt_lab.sweep`.

    Returns:
      A :class:`TuneResult`.

    Example:
      >>> p = jol.problems.logistic()
      >>> space = jol.search.space(learning_rate=jol.search.log_uniform(1e-3, 1.0))
      >>> result = jol.tune(p.loss_fn, p.init_fn, lambda hp: optax.sgd(hp["learning_rate"]),
      ...                   space, p.data, trials=9, budget_steps=90, batch_size=32,
      ...                   eval_data=p.eval_data, log_every=10, progress=False)
      >>> result.best["learning_rate"]  # doctest: +SKIP
    """
    started = time.perf_counter()
    sample = sample_trials(space, trials, sampler, sample_seed)
    eta = _validation.check_count(eta, "eta", minimum=2, fix="e.g. eta=3 keeps a third.")
    _validation.check_choice("metric", metric, METRICS)
    if metric == "val_loss" and eval_data is None:
        raise ValueError(
            "`metric`='val_loss' needs `eval_data`; pass eval_data=..., or metric='train_loss'."
        )
    if collectives.multiprocess():
        raise ValueError(
            "jol.tune runs in one process (jax.process_count() > 1 here); run it on one "
            "host, or use jol.sweep, which spans processes."
        )
    budget_steps = _validation.check_count(budget_steps, "budget_steps", fix="e.g. 300.")
    log_every = _validation.check_count(log_every, "log_every", fix="e.g. 10.")
    if budget_steps % log_every:
        raise ValueError(
            f"`log_every`={log_every} must divide `budget_steps`={budget_steps}; e.g. "
            f"log_every={math.gcd(budget_steps, log_every)}."
        )
    if min_steps is not None:
        min_steps = _validation.check_count(
            min_steps, "min_steps", maximum=budget_steps, fix="e.g. budget_steps // 9."
        )
    ends, counts = rung_schedule(len(sample), budget_steps, eta, min_steps, log_every)
    every = math.gcd(*ends)
    if chunk_size is None:
        chunk_size = every
    elif every % _validation.check_count(chunk_size, "chunk_size", fix=f"e.g. {every}."):
        raise ValueError(
            f"`chunk_size`={chunk_size} must divide every rung's end {ends}; e.g. "
            f"chunk_size={every}, or None."
        )
    setup = _sweep._setup(
        loss_fn,
        init_fn,
        make_optimizer,
        sample,
        data,
        steps=budget_steps,
        seeds=seeds,
        batch_size=batch_size,
        eval_data=eval_data,
        has_state=has_state,
        wrt=wrt,
        log_every=log_every,
        callbacks=(),
        monitor_size=monitor_size,
        divergence_factor=divergence_factor,
        max_parallel=max_parallel,
        chunk_size=chunk_size,
        devices=devices,
        checkpoint_dir=None,
        keep_params=True,
        memory_budget=None,
    )
    return _Halving(setup, sample, ends, counts, metric, max_parallel, devices, progress).run(
        started
    )


def sample_trials(space: Any, trials: Any, sampler: str, sample_seed: Any) -> list[dict]:
    """The trials of ``space`` (sampled with ``sampler``), or ``space`` itself if a list."""
    _validation.check_choice("sampler", sampler, ("quasirandom", "random"))
    if isinstance(space, Space):
        if trials is None:
            raise ValueError("`trials` is needed to sample from `space`; e.g. trials=27.")
        n = _validation.check_count(trials, "trials", fix="e.g. trials=27.")
        if sampler == "quasirandom":
            return space.quasirandom(n, seed=sample_seed)
        return space.random(n, seed=sample_seed)
    if isinstance(space, Sequence) and not isinstance(space, str | bytes):
        if trials is not None and trials != len(space):
            raise ValueError(
                f"`trials`={trials!r} but `space` is a list of {len(space)} trials; drop "
                "`trials` (or pass a jol.search.space to sample from)."
            )
        return [dict(t) if isinstance(t, Mapping) else t for t in space]
    raise TypeError(
        f"`space` must be a jol.search.space(...) or a list of trials (dicts name -> "
        f"value), got {space!r}."
    )


class _Halving:
    """The rungs of one call to :func:`tune`."""

    def __init__(self, setup, sample, ends, counts, metric, max_parallel, devices, progress):
        self.plan, self.setup, self.sample = setup.plan, setup, sample
        self.ends, self.counts, self.metric = ends, counts, metric
        self.devices = devices
        self.static, self.spec = setup.plan.static, setup.plan.static.spec
        self.num_seeds = setup.seed_list.size
        # With max_parallel, every rung's chunks have the width rung 0 gives them.
        self.width = setup.plan.layout.width if max_parallel is not None else None
        self.max_parallel = max_parallel
        total = self.num_seeds * sum(
            n * (b - a) for n, a, b in zip(counts, [0, *ends[:-1]], ends, strict=True)
        )
        self.bar = tqdm.auto.tqdm(total=total, disable=not progress, unit="run-step", desc="tune")

    def run(self, started: float) -> TuneResult:
        plan, spec = self.plan, self.spec
        num_runs = plan.runs.seeds.size
        curves: dict[str, np.ndarray] = {}
        stopped = np.zeros(num_runs, np.int64)
        rungs: list[Rung] = []
        alive = np.arange(len(self.sample))  # trials
        states: dict[int, Any] = {}  # run -> (wave state, lane), where each run stands
        run_steps = 0
        begin = 0
        for i, end in enumerate(self.ends):
            final = i == len(self.ends) - 1
            runs = (alive[:, None] * self.num_seeds + np.arange(self.num_seeds)).ravel()
            first = begin // spec.chunk_size
            last = spec.num_chunks if final else end // spec.chunk_size
            waves = self._rung(runs, states, first, last, curves)
            run_steps += runs.size * (end - begin)
            stopped[runs] = end
            score = self._final_scores(curves, runs) if final else self._scores(waves, runs)
            score = score.reshape(alive.size, self.num_seeds)
            score = np.where(np.isfinite(score).all(1), score.mean(1), np.inf)
            order = np.argsort(score, kind="stable")
            keep_n = 0 if final else min(self.counts[i + 1], int(np.isfinite(score).sum()))
            kept = alive[order[:keep_n]]
            rungs.append(Rung(end, alive.copy(), score, kept))
            if not final:
                alive = np.sort(kept)
                if alive.size == 0:
                    break
            begin = end
        self.bar.close()
        last = rungs[-1]
        reached = last.steps == self.ends[-1] and np.isfinite(last.score).any()
        best = int(last.trials[np.argmin(last.score)]) if reached else -1
        result = self._result(curves)
        finalists = np.zeros(0, np.int64)
        params = model_state = None
        if best >= 0:
            finalists = (last.trials[:, None] * self.num_seeds + np.arange(self.num_seeds)).ravel()
            final = self._gather(finalists, states)
            params, model_state = jax.device_get((final.params, final.model_state))
        return TuneResult(
            trials=self.sample,
            sweep=result,
            rungs=rungs,
            stopped=stopped,
            metric=self.metric,
            run_steps=int(run_steps),
            full_run_steps=int(num_runs * self.ends[-1]),
            best_trial=best,
            seconds=time.perf_counter() - started,
            finalists=finalists,
            params=params,
            state=model_state if self.static.model.has_state else None,
        )

    # --- one rung -------------------------------------------------------------------

    def _layout(self, num: int) -> _sweep._Layout:
        layout = _sweep._Layout.of(num, self.devices, self.width or self.max_parallel)
        if self.width is not None:
            layout = layout._replace(width=self.width)
        return layout

    def _rung(self, runs, states, first, last, curves) -> list:
        """Trains ``runs`` over chunks ``[first, last)``; returns each wave's (state, runs)."""
        layout = self._layout(runs.size)
        plan = self.plan._replace(layout=layout)
        waves = []
        for w in range(0, len(layout.chunks), layout.num_devices):
            chunks = [runs[m] for m in layout.chunks[w : w + layout.num_devices]]
            waves.append(self._wave(plan, chunks, states, first, last, curves))
        return waves

    def _wave(self, plan, chunks, states, first, last, curves) -> tuple:
        """One chunk of runs per device, padded to the layout's width, over the chunks of
        steps ``[first, last)``; their rows go into ``curves``, their states into ``states``."""
        spec, width = self.spec, plan.layout.width
        padded = [np.concatenate([m, np.full(width - m.size, m[-1])]) for m in chunks]
        padded += [padded[-1]] * (plan.layout.num_devices - len(chunks))
        take = np.concatenate(padded)
        state = self._start(plan, take, states) if first else self._init(plan, take)
        hparams = self._put(plan, {k: jnp.asarray(v[take]) for k, v in plan.runs.hparams.items()})
        unique, which = np.unique(plan.runs.seeds[take], return_inverse=True)
        words = [_loop.key_words(plan.keys[int(s)][1]) for s in unique]
        num_real = sum(m.size for m in chunks)
        state, rows = _loop.run_chunks(
            lambda run, start, idx: programs.train_runs(
                self.static, run, hparams, idx, start, plan.data, plan.monitor, plan.eval_data
            ),
            state,
            spec,
            indices=lambda start: _sweep._chunk_indices(plan, words, which, start),
            first=first,
            last=last,
            progress=lambda steps: self.bar.update(num_real * steps),
        )
        real = np.concatenate(
            [np.arange(i * width, i * width + m.size) for i, m in enumerate(chunks)]
        )
        members = take[real]
        rpc = spec.rows_per_chunk
        rows_from, rows_to = first * rpc, min(last * rpc, spec.num_rows)
        for k in rows[0]:
            v = np.concatenate([r[k] for r in rows], axis=1)
            if k not in curves:
                inexact = np.issubdtype(v.dtype, np.inexact)
                shape = (plan.runs.seeds.size, spec.num_rows)
                curves[k] = np.full(shape, np.nan if inexact else False, v.dtype)
            curves[k][members, rows_from:rows_to] = v[real, : rows_to - rows_from]
        for lane, r in zip(real, members, strict=True):
            states[int(r)] = (state, int(lane))
        return state, members, real

    def _put(self, plan, tree):
        by_run = plan.layout.by_run
        return tree if by_run is None else jax.device_put(tree, by_run)

    def _init(self, plan, take: np.ndarray) -> Any:
        """Step 0 of the lanes ``take`` (runs), as :func:`jaxopt_lab.sweep` builds it."""
        seeds = plan.runs.seeds[take]
        unique, which = np.unique(seeds, return_inverse=True)
        starts = jax.device_get(
            [programs.build(plan.builder, plan.keys[int(s)][0]) for s in unique]
        )
        params, model_state = self._put(plan, _loop.stack_take(starts, which))
        keys = None
        if self.static.model.uses_key:
            data_keys = [_loop.typed_key(plan.keys[int(s)][1]) for s in seeds]
            keys = self._put(
                plan,
                jax.random.wrap_key_data(jnp.stack([jax.random.key_data(k) for k in data_keys])),
            )
        hparams = self._put(plan, {k: jnp.asarray(v[take]) for k, v in plan.runs.hparams.items()})
        return programs.init_runs(self.static, hparams, params, model_state, keys, plan.monitor)

    def _start(self, plan, take: np.ndarray, states: dict) -> Any:
        """The lanes ``take`` (runs) where the last rung left them, placed as a wave."""
        return self._put(plan, self._gather(take, states))

    def _gather(self, take: np.ndarray, states: dict) -> Any:
        """The states of the runs ``take``, stacked in that order (on the devices)."""
        groups: dict[int, tuple[Any, list, list]] = {}  # id(wave state) -> lanes
        for pos, r in enumerate(take):
            state, lane = states[int(r)]
            groups.setdefault(id(state), (state, [], []))
            groups[id(state)][1].append(lane)
            groups[id(state)][2].append(pos)
        parts, positions = [], []
        for state, lanes, pos in groups.values():
            idx = jnp.asarray(lanes)
            parts.append(jax.tree.map(lambda x, idx=idx: jnp.take(x, idx, axis=0), state))
            positions.extend(pos)
        gathered = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
        order = jnp.asarray(np.argsort(positions, kind="stable"))
        return jax.tree.map(lambda x: jnp.take(x, order, axis=0), gathered)

    def _scores(self, waves: list, runs: np.ndarray) -> np.ndarray:
        """``metric`` of each run of ``runs`` now, in evaluation mode; inf for a run that
        diverged, or would be flagged at this step (the sweep's rule: a non-finite value,
        or a monitoring loss above ``divergence_factor`` times its initial size)."""
        plan, factor = self.plan, self.spec.divergence_factor
        data = plan.eval_data if self.metric == "val_loss" else plan.monitor
        value = {}
        for state, members, real in waves:
            train, loss = jax.device_get(programs.eval_runs(self.static, state, plan.monitor, data))
            bad = np.asarray(state.diverged) | ~np.isfinite(train) | ~np.isfinite(loss)
            if factor is not None:
                bad |= train > factor * np.abs(np.asarray(state.initial_loss))
            for r, v, b in zip(members, loss[real], bad[real], strict=True):
                value[int(r)] = np.inf if b else float(v)
        return np.array([value[int(r)] for r in runs])

    def _final_scores(self, curves: dict, runs: np.ndarray) -> np.ndarray:
        """``metric`` at the last row of each finalist; inf if it diverged."""
        v = curves[self.metric][runs, -1].astype(np.float64)
        bad = curves["diverged"][runs, -1].astype(bool) | ~np.isfinite(v)
        return np.where(bad, np.inf, v)

    def _result(self, curves: dict) -> SweepResult:
        """Every run's curves; the flags of a stopped run stay as they were at its stop."""
        plan, spec = self.plan, self.spec
        for k in ("diverged", "nonfinite"):
            if k in curves:
                flags = curves[k]
                for row in range(1, flags.shape[1]):
                    flags[:, row] |= flags[:, row - 1]
        return SweepResult(
            hparams=plan.runs.hparams,
            seeds=plan.runs.seeds,
            steps=np.arange(spec.num_rows, dtype=np.int32) * spec.log_every,
            curves=curves,
            params=None,
            num_devices=plan.layout.num_devices,
            model_def=self.static.model,
        )
