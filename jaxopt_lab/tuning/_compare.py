"""``compare``: several optimizer families tuned alike on several problems, as the
benchmark papers compare them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tqdm.auto

from jaxopt_lab import _validation
from jaxopt_lab._loop import checks
from jaxopt_lab.problems import Problem
from jaxopt_lab.problems import get as get_problem
from jaxopt_lab.search import Space
from jaxopt_lab.sweep import sweep
from jaxopt_lab.sweep._result import SweepResult
from jaxopt_lab.tuning._families import family as get_family
from jaxopt_lab.tuning._profile import Profile, performance_profile
from jaxopt_lab.tuning._tune import TuneResult, sample_trials, tune

METHODS = ("sweep", "halving")


class Stat(NamedTuple):
    """A mean over seeds with its spread: std (ddof=1) and a 95% t-interval of the mean."""

    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> Stat:
        from scipy import stats

        values = np.asarray(values, np.float64)
        if values.size == 0 or not np.isfinite(values).all():
            return cls(math.inf, math.nan, math.nan, math.nan)
        mean = float(values.mean())
        if values.size < 2:
            return cls(mean, math.nan, math.nan, math.nan)
        std = float(values.std(ddof=1))
        half = float(stats.t.ppf(0.975, values.size - 1)) * std / math.sqrt(values.size)
        return cls(mean, std, mean - half, mean + half)


class Entry(NamedTuple):
    """One family on one problem: its search, its best setting, and the reruns."""

    best: dict[str, float]  # the best setting's hyperparameters
    search: SweepResult | TuneResult  # the search (a sweep of every trial, or halving)
    rerun: SweepResult  # the best setting with the fresh seeds
    final_val: Stat  # validation loss at the last step, over the fresh seeds
    best_val: Stat  # lowest validation loss along each run, over the fresh seeds
    steps_to_target: float  # first logged step the seed-mean val_loss is <= target; inf
    seconds_to_target: float  # steps_to_target x the rerun's seconds per step
    seconds_per_step: float  # of the rerun (all its seeds at once), compilation excluded
    divergence_rate: float  # the share of the search's runs that diverged
    trial_scores: np.ndarray  # (trials,) each trial's search score, in sample order
    search_seconds: float  # wall time of the search
    run_steps: int  # run-steps the search trained


class Comparison(NamedTuple):
    """What :func:`compare` measured; ``entries[problem][family]`` is an :class:`Entry`."""

    problems: list[str]
    families: list[str]
    entries: dict[str, dict[str, Entry]]
    targets: dict[str, float]  # problem -> the validation loss of "time to target"
    settings: dict[str, Any]  # trials, seeds, method, steps per problem, ...

    def profile(self, r_max: float = 4.0, *, by: str = "steps") -> Profile:
        """AlgoPerf's performance profiles of the steps (``by="steps"``) or seconds
        (``by="seconds"``) each family took to reach each problem's target."""
        _validation.check_choice("by", by, ("steps", "seconds"))
        times = {
            f: [getattr(self.entries[p][f], f"{by}_to_target") for p in self.problems]
            for f in self.families
        }
        return performance_profile(times, r_max=r_max, problems=self.problems)

    def tuning_curves(self) -> dict[str, dict[str, np.ndarray]]:
        """problem -> family -> each trial's search score in sample order (the best so far
        against the number of trials is the Crowded Valley budget view)."""
        return {
            p: {f: self.entries[p][f].trial_scores for f in self.families} for p in self.problems
        }

    def winner(self, problem: str) -> str:
        """The family with the fewest steps to ``problem``'s target (ties: the lower mean
        final validation loss)."""
        row = self.entries[problem]
        return min(self.families, key=lambda f: (row[f].steps_to_target, row[f].final_val.mean))

    def table(self) -> list[dict[str, Any]]:
        """One row per problem and family."""
        rows = []
        for p in self.problems:
            for f in self.families:
                e = self.entries[p][f]
                rows.append(
                    {
                        "problem": p,
                        "family": f,
                        **{f"best_{k}": v for k, v in e.best.items()},
                        "final_val_loss": e.final_val.mean,
                        "final_val_loss_std": e.final_val.std,
                        "final_val_loss_ci": (e.final_val.low, e.final_val.high),
                        "best_val_loss": e.best_val.mean,
                        "best_val_loss_ci": (e.best_val.low, e.best_val.high),
                        "target": self.targets[p],
                        "steps_to_target": e.steps_to_target,
                        "seconds_to_target": e.seconds_to_target,
                        "divergence_rate": e.divergence_rate,
                        "search_seconds": e.search_seconds,
                    }
                )
        return rows

    def format(self, r_max: float = 4.0) -> str:
        """The tables as Markdown: one per problem, then the performance profile scores."""
        out = []
        for p in self.problems:
            out.append(f"### {p} (target val_loss {self.targets[p]:.4g})\n")
            out.append(
                "| family | best setting | final val_loss (95% CI) | best val_loss | "
                "steps to target | s to target | diverged in search |"
            )
            out.append("|---|---|---|---|---|---|---|")
            for f in self.families:
                e = self.entries[p][f]
                setting = ", ".join(f"{k}={v:.3g}" for k, v in e.best.items())
                out.append(
                    f"| {f}{' (wins)' if self.winner(p) == f else ''} | {setting} | "
                    f"{e.final_val.mean:.4g} ({e.final_val.low:.4g}, {e.final_val.high:.4g}) | "
                    f"{e.best_val.mean:.4g} | {_count(e.steps_to_target)} | "
                    f"{_secs(e.seconds_to_target)} | {e.divergence_rate:.0%} |"
                )
            out.append("")
        profile = self.profile(r_max)
        out.append(
            f"### performance profile (steps to target, r_max = {profile.r_max:g})\n\n"
            "| family | score | wins | within r_max |\n|---|---|---|---|"
        )
        for f in sorted(self.families, key=lambda f: -profile.scores[f]):
            r = profile.ratios[f]
            out.append(
                f"| {f} | {profile.scores[f]:.3f} | {np.mean(r <= 1.0):.2f} | "
                f"{np.mean(r <= profile.r_max):.2f} |"
            )
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists (JSON): settings, targets, rows, the profile."""
        profile = self.profile()
        return {
            "settings": self.settings,
            "targets": self.targets,
            "rows": [{k: _plain(v) for k, v in row.items()} for row in self.table()],
            "profile": {
                "r_max": profile.r_max,
                "scores": profile.scores,
                "ratios": {f: [_plain(x) for x in r] for f, r in profile.ratios.items()},
            },
            "tuning_curves": {
                p: {f: [_plain(x) for x in v] for f, v in c.items()}
                for p, c in self.tuning_curves().items()
            },
        }


def _plain(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic | float):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _count(steps: float) -> str:
    return "never" if not math.isfinite(steps) else f"{int(steps)}"


def _secs(seconds: float) -> str:
    return "never" if not math.isfinite(seconds) else f"{seconds:.3g}"


def compare(
    families: Mapping[str, tuple[Callable, Space] | str] | Sequence[str],
    problems: Sequence[Problem | str] | Mapping[str, Problem],
    *,
    trials: int = 27,
    seeds: int = 5,
    search_seeds: int = 1,
    method: str = "sweep",
    sampler: str = "quasirandom",
    sample_seed: int = 0,
    steps: int | None = None,
    log_every: int | None = None,
    target: str | Mapping[str, float] = "best",
    tolerance: float = 0.05,
    eta: int = 3,
    progress: bool = True,
) -> Comparison:
    """Tunes each optimizer family alike on each problem, reruns its best setting with
    fresh seeds, and measures what the benchmark papers report.

    For every problem and family: ``trials`` settings are drawn from the family's space
    (the same sampler and ``sample_seed`` for every family) and trained with seeds
    ``0, ..., search_seeds - 1``, all at once (``method="sweep"``: every trial to the
    end, the random search of Schmidt et al. 2021 and AlgoPerf) or by successive
    halving (``method="halving"``, :func:`jaxopt_lab.tune`). The best setting (lowest
    final validation loss, mean over seeds; diverged trials never win) is trained again
    with ``seeds`` fresh seeds (``search_seeds, ...``, the same for every family).

    From the reruns: final and best validation loss (mean, std and a 95% t-interval over
    the seeds), and the steps to the problem's target: the first logged step where the
    seed-mean validation loss is at or below it (DeepOBS, AlgoPerf). The target is, with
    ``target="best"``, the lowest seed-mean validation loss any family reached, relaxed
    by ``tolerance`` (``best + tolerance * |best|``: some family always reaches it); with
    ``"problem"``, each problem's own ``target``; or a mapping problem name -> loss.
    Seconds to target are steps times the rerun's measured seconds per step (a second,
    compiled call; every seed at once).

    Args:
      families: name -> ``(make_optimizer, space)``, or names of
        :data:`jaxopt_lab.tuning.FAMILIES` (``["sgd", "momentum", "adam"]``).
      problems: :class:`jaxopt_lab.problems.Problem` s (with ``eval_data``), names of the
        suite (``"digits_mlp"``), or a mapping name -> problem.
      trials: settings per family and problem.
      seeds: fresh seeds for the reruns of the best settings (>= 2 for intervals).
      search_seeds: seeds per trial in the search.
      method: ``"sweep"`` or ``"halving"``.
      steps: steps per run (default each problem's ``steps``).
      log_every: steps between logged rows (default ``steps // 20``, or a divisor).
      target, tolerance: the target of "time to target" (above).
      eta: the reduction factor of ``method="halving"``.
      progress: one progress bar per family.

    Returns:
      A :class:`Comparison`: ``.format()`` (Markdown tables), ``.profile()``,
      ``.tuning_curves()``, ``.to_dict()``, ``.winner(problem)``.
    """
    fams = _families(families)
    probs = _problems(problems)
    trials = _validation.check_count(trials, "trials", fix="e.g. trials=27.")
    seeds = _validation.check_count(seeds, "seeds", fix="e.g. seeds=5.")
    search_seeds = _validation.check_count(search_seeds, "search_seeds", fix="e.g. 1.")
    _validation.check_choice("method", method, METHODS)
    if steps is not None:
        steps = _validation.check_count(steps, "steps", fix="e.g. steps=300.")
    if log_every is not None:
        log_every = _validation.check_count(log_every, "log_every", fix="e.g. 10.")
    if isinstance(target, str):
        _validation.check_choice("target", target, ("best", "problem"))
    elif not isinstance(target, Mapping):
        raise TypeError(
            f"`target` must be 'best', 'problem' or a mapping problem -> loss, got {target!r}."
        )
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not tolerance >= 0
        or not math.isfinite(tolerance)
    ):
        raise ValueError(f"`tolerance` must be a number >= 0, got {tolerance!r}; e.g. 0.05.")
    _check_targets(target, probs)

    lengths = {}
    for name, p in probs.items():
        n = steps or p.steps or 300
        every = log_every or _default_log_every(n)
        if n % every:
            raise ValueError(
                f"`log_every`={every} must divide the steps of problem {name!r} ({n}); "
                f"e.g. log_every={math.gcd(n, every)}."
            )
        lengths[name] = (n, every)

    entries: dict[str, dict[str, Entry]] = {p: {} for p in probs}
    for fname, (make_optimizer, space) in fams.items():
        bar = tqdm.auto.tqdm(total=2 * len(probs), desc=fname, unit="stage", disable=not progress)
        for pname, p in probs.items():
            n, every = lengths[pname]
            bar.set_postfix_str(f"{pname}: search")
            entries[pname][fname] = _one(
                p,
                make_optimizer,
                space,
                trials=trials,
                seeds=seeds,
                search_seeds=search_seeds,
                method=method,
                sampler=sampler,
                sample_seed=sample_seed,
                steps=n,
                log_every=every,
                eta=eta,
                bar=bar,
                pname=pname,
            )
        bar.close()

    targets = {}
    for pname, p in probs.items():
        if isinstance(target, Mapping):
            targets[pname] = float(target[pname])
        elif target == "problem":
            targets[pname] = float(p.target)
        else:
            best = min(float(np.nanmin(_mean_curve(e.rerun))) for e in entries[pname].values())
            targets[pname] = best + tolerance * abs(best)
    for pname in probs:
        for fname, e in entries[pname].items():
            steps_to = _steps_to_target(entries[pname][fname].rerun, targets[pname])
            entries[pname][fname] = e._replace(
                steps_to_target=steps_to, seconds_to_target=steps_to * e.seconds_per_step
            )
    settings = {
        "trials": trials,
        "seeds": seeds,
        "search_seeds": search_seeds,
        "method": method,
        "sampler": sampler,
        "sample_seed": sample_seed,
        "target": target if isinstance(target, str) else "given",
        "tolerance": tolerance,
        "steps": {k: v[0] for k, v in lengths.items()},
        "log_every": {k: v[1] for k, v in lengths.items()},
        **({"eta": eta} if method == "halving" else {}),
    }
    return Comparison(list(probs), list(fams), entries, targets, settings)


def _default_log_every(steps: int) -> int:
    """About 20 rows: the largest divisor of ``steps`` at most ``steps // 20``."""
    return checks.default_log_every(steps, rows=20)


def _one(p: Problem, make_optimizer, space, *, bar, pname, **kw) -> Entry:
    """The search, the best setting and its reruns for one family on one problem."""
    common = {
        "batch_size": p.batch_size,
        "eval_data": p.eval_data,
        "has_state": p.has_state,
        "log_every": kw["log_every"],
        "progress": False,
    }
    init_fn = p.sweep_init_fn()
    started = time.perf_counter()
    if kw["method"] == "halving":
        search = tune(
            p.loss_fn,
            init_fn,
            make_optimizer,
            space,
            p.data,
            trials=kw["trials"],
            budget_steps=kw["steps"],
            eta=kw["eta"],
            seeds=kw["search_seeds"],
            sampler=kw["sampler"],
            sample_seed=kw["sample_seed"],
            **common,
        )
        sample, scores = search.trials, _halving_scores(search)
        diverged = search.sweep.curves["diverged"][:, -1].astype(bool)
        run_steps = search.run_steps
    else:
        sample = sample_trials(space, kw["trials"], kw["sampler"], kw["sample_seed"])
        search = sweep(
            p.loss_fn,
            init_fn,
            make_optimizer,
            sample,
            p.data,
            steps=kw["steps"],
            seeds=kw["search_seeds"],
            keep_params=False,
            **common,
        )
        final = search.curves["val_loss"][:, -1].astype(np.float64)
        diverged = search.diverged
        final = np.where(diverged | ~np.isfinite(final), np.inf, final)
        scores = final.reshape(len(sample), kw["search_seeds"])
        scores = np.where(np.isfinite(scores).all(1), scores.mean(1), np.inf)
        run_steps = search.num_runs * kw["steps"]
    search_seconds = time.perf_counter() - started
    bar.update(1)
    bar.set_postfix_str(f"{pname}: rerun")
    best_trial = int(np.argmin(scores))
    if not np.isfinite(scores[best_trial]):
        best_trial = 0  # every trial diverged: rerun the first, reported as never reaching
    best = dict(sample[best_trial])
    rerun_seeds = list(range(kw["search_seeds"], kw["search_seeds"] + kw["seeds"]))

    def rerun() -> SweepResult:
        return sweep(
            p.loss_fn,
            init_fn,
            make_optimizer,
            [best],
            p.data,
            steps=kw["steps"],
            seeds=rerun_seeds,
            keep_params=False,
            **common,
        )

    result = rerun()
    started = time.perf_counter()
    rerun()  # compiled now: the time of training alone
    seconds_per_step = (time.perf_counter() - started) / kw["steps"]
    bar.update(1)
    val = result.curves["val_loss"].astype(np.float64)
    val = np.where(result.diverged[:, None], np.inf, val)
    return Entry(
        best=best,
        search=search,
        rerun=result,
        final_val=Stat.of(val[:, -1]),
        best_val=Stat.of(np.nanmin(val, axis=1)),
        steps_to_target=math.inf,
        seconds_to_target=math.inf,
        seconds_per_step=seconds_per_step,
        divergence_rate=float(np.mean(diverged)),
        trial_scores=scores,
        search_seconds=search_seconds,
        run_steps=int(run_steps),
    )


def _halving_scores(result: TuneResult) -> np.ndarray:
    """Each trial's score at the budget (the finalists); inf for the trials stopped early."""
    scores = np.full(len(result.trials), np.inf)
    last = result.rungs[-1]
    if last.steps == result.sweep.steps[-1]:
        scores[last.trials] = last.score
    return scores


def _mean_curve(result: SweepResult) -> np.ndarray:
    val = result.curves["val_loss"].astype(np.float64)
    val = np.where(result.diverged[:, None] | ~np.isfinite(val), np.inf, val)
    return val.mean(axis=0)


def _steps_to_target(result: SweepResult, target: float) -> float:
    reached = np.flatnonzero(_mean_curve(result) <= target)
    return float(result.steps[reached[0]]) if reached.size else math.inf


def _families(families: Any) -> dict[str, tuple[Callable, Space]]:
    if isinstance(families, str) or not isinstance(families, Mapping | Sequence):
        raise TypeError(
            f"`families` must be a mapping name -> (make_optimizer, space) or a list of "
            f"family names, got {families!r}; e.g. ['sgd', 'momentum', 'adam']."
        )
    if not isinstance(families, Mapping):
        families = {name: name for name in families}
    if not families:
        raise ValueError("`families` is empty; e.g. ['sgd', 'momentum', 'adam'].")
    out = {}
    for name, value in families.items():
        if isinstance(value, str):
            value = get_family(value)
        if (
            not isinstance(value, tuple)
            or len(value) != 2
            or not callable(value[0])
            or not isinstance(value[1], Space)
        ):
            raise TypeError(
                f"`families[{name!r}]` must be (make_optimizer, jol.search.space(...)) or a "
                f"family name, got {value!r}."
            )
        out[str(name)] = value
    return out


def _problems(problems: Any) -> dict[str, Problem]:
    if isinstance(problems, str | Problem):
        problems = [problems]
    if isinstance(problems, Mapping):
        items = list(problems.items())
    elif isinstance(problems, Sequence):
        items = [
            (p if isinstance(p, str) else getattr(p, "name", str(i)), p)
            for i, p in enumerate(problems)
        ]
    else:
        raise TypeError(
            f"`problems` must be a list of jol.problems.Problem or suite names, got {problems!r}."
        )
    if not items:
        raise ValueError("`problems` is empty; e.g. ['quadratic_noisy', 'digits_mlp'].")
    out = {}
    for name, p in items:
        if isinstance(p, str):
            p = get_problem(p)
        if not isinstance(p, Problem):
            raise TypeError(
                f"`problems[{name!r}]` must be a jol.problems.Problem or a suite name, got {p!r}."
            )
        if p.eval_data is None:
            raise ValueError(
                f"`problems[{name!r}]` has no eval_data; a comparison measures validation "
                "loss: give the problem eval_data=..."
            )
        if name in out:
            raise ValueError(f"`problems`: two problems are named {name!r}; rename one.")
        out[name] = p
    return out


def _check_targets(target: Any, problems: dict[str, Problem]) -> None:
    if isinstance(target, Mapping):
        missing = sorted(set(problems) - set(target))
        if missing:
            raise ValueError(f"`target` lacks the problems {missing}; give a loss for each.")
        for name in problems:
            value = target[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"`target[{name!r}]` must be a finite number, got {value!r}.")
    elif target == "problem":
        for name, p in problems.items():
            if p.target is None:
                raise ValueError(
                    f"`target`='problem' but problem {name!r} has no target; give it "
                    "target=..., or use target='best'."
                )
