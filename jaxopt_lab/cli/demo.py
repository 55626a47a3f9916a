"""``jaxopt-lab demo``: the whole lab on the bundled digits, end to end.

1. the lectures' update rules raced on the ill-conditioned quadratic and Rosenbrock;
2. a vmapped learning-rate sweep of a Flax NNX MLP (SGD with momentum, and Adam, over
   the lectures' grid 1, 0.3, 0.1, ... and several seeds), diverged runs flagged;
3. the best setting by mean final validation loss, retrained with ``jol.train`` and the
   sharpness callback;
4. the trained net's Hessian: top and bottom eigenvalues by Lanczos, the kind of point,
   condition number, spectral density (stochastic Lanczos quadrature), learning-rate
   advice (2 / lambda_max against the rate used);
5. a diagnosis of the training curve;
6. ``report.md``, ``report.json`` and PNG figures in the output folder, and a summary
   table on the terminal (:mod:`jaxopt_lab.cli.report`).

The optimizers, their display names and stability bounds come from
:mod:`jaxopt_lab.cli.registry`; the problem is :func:`jaxopt_lab.cli.problem.digits_mlp`,
built as a user's ``--problem`` is.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from jaxopt_lab import curvature, datasets, plot
from jaxopt_lab.cli import args as a
from jaxopt_lab.cli import race as races
from jaxopt_lab.cli import registry, report
from jaxopt_lab.cli.analysis import (
    diagnose,
    learning_rate_advice,
    sharpness_summary,
    spectrum_summary,
)
from jaxopt_lab.cli.problem import Problem, digits_mlp
from jaxopt_lab.cli.report import clean, plain
from jaxopt_lab.cli.sweep import DIVERGENCE_FACTOR, sweep_problem
from jaxopt_lab.sweep import SweepResult, seed_keys
from jaxopt_lab.train import train

OPTIMIZERS = ("momentum", "adam")  # swept by the demo: names of the registry


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole lab on the bundled digits: sweep, retrain, Hessian, report",
        description=(
            "Races the update rules on the lectures' landscapes; sweeps the learning rate of "
            "a Flax NNX MLP on the bundled digits (SGD with momentum, and Adam, several "
            "seeds, one vmapped program each); retrains the best setting with sharpness "
            "tracking; analyzes the trained net's Hessian (top eigenvalues, lambda_min, "
            "condition number, kind of point, spectral density, 2/lambda_max against the "
            "learning rate); diagnoses its training curve. Writes report.md, report.json and "
            "PNG figures to --out and prints a summary."
        ),
        formatter_class=a._Help,
    )
    p.add_argument("--out", default=a.DEFAULT_OUT, help="output folder")
    p.add_argument(
        "--quick", action="store_true", help="a small, fast variant (fewer steps, rates, seeds)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """``jaxopt-lab demo``."""
    config = QUICK if args.quick else FULL
    print(
        "jaxopt-lab demo"
        + (" --quick" if args.quick else "")
        + ": update rules, a vmapped sweep, a retrained net's Hessian, a diagnosis"
    )
    run(Path(args.out), config, progress=not args.no_progress)
    return 0


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The sizes of one demo run."""

    learning_rates: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
    momenta: tuple[float, ...] = (0.0, 0.5, 0.9)  # SGD with momentum; 0 is plain SGD
    seeds: int = 3
    steps: int = 2000
    batch_size: int = 32
    hidden: int = 32
    log_every: int = 10
    sharpness_every: int = 50  # a multiple of log_every
    sharpness_examples: int = 512  # the fixed subset the sharpness is measured on
    top_k: int = 5  # Lanczos eigenvalues at each end of the spectrum
    density_probes: int = 16
    density_nodes: int = 80
    race_steps: dict[str, int] | None = None  # None: the race's defaults
    dpi: int = plot.DPI


FULL = DemoConfig()
QUICK = DemoConfig(
    learning_rates=(1.0, 0.1, 0.01),
    momenta=(0.9,),
    seeds=2,
    steps=200,
    hidden=16,
    sharpness_every=50,
    sharpness_examples=256,
    top_k=2,
    density_probes=2,
    density_nodes=16,
    race_steps={"lecture_quadratic": 200},  # the quadratic only
    dpi=80,
)


class _Clock:
    """Seconds per stage, and a one-line header as each stage starts."""

    def __init__(self, total: int):
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}
        self.total = total
        self._name: str | None = None
        self._t = self.start

    def stage(self, name: str, what: str) -> None:
        self.stop()
        self._name, self._t = name, time.perf_counter()
        print(f"\n[{len(self.stages) + 1}/{self.total}] {what}", flush=True)

    def stop(self) -> None:
        if self._name is not None:
            self.stages[self._name] = round(time.perf_counter() - self._t, 2)
            self._name = None

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.start, 2)


# --- 2. the sweep --------------------------------------------------------------------------


def _sweep_family(name: str, problem: Problem, config: DemoConfig, progress: bool):
    entry = registry.get(name)
    momenta = list(config.momenta) if entry.momentum_key == "momentum" else []
    grid = entry.grid(list(config.learning_rates), momenta)
    return sweep_problem(
        problem,
        entry,
        grid,
        steps=config.steps,
        seeds=config.seeds,
        batch_size=config.batch_size,
        log_every=config.log_every,
        progress=progress,
    )


def _accuracies(model: Problem, result: SweepResult, split) -> np.ndarray:
    """Final accuracy of every run of a sweep on ``split``."""
    acc = jax.jit(jax.vmap(model.accuracy_fn, in_axes=(0, None)))(result.params, split)
    return np.asarray(acc, np.float64)


def sweep_rows(model: Problem, results: dict[str, SweepResult], ds) -> list[dict]:
    """One row per run: optimizer, hyperparameters, seed, losses, accuracy, diverged."""
    rows = []
    for family, result in results.items():
        table = result.table()
        acc = _accuracies(model, result, ds.validation)
        for i in range(result.num_runs):
            diverged = bool(table["diverged"][i])
            rows.append(
                {
                    "optimizer": family,
                    "learning_rate": plain(table["learning_rate"][i]),
                    "momentum": plain(table["momentum"][i]) if "momentum" in table else None,
                    "seed": int(table["seed"][i]),
                    "final_train_loss": clean(table["final_train_loss"][i]),
                    "final_val_loss": clean(table["final_val_loss"][i]),
                    "best_val_loss": clean(table["best_val_loss"][i]),
                    "best_val_step": int(table["best_val_step"][i]),
                    "val_accuracy": None if diverged else clean(acc[i]),
                    "diverged": diverged,
                }
            )
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per setting, for the report's table: the mean and spread over the seeds
    that did not diverge, the mean accuracy, and how many diverged."""
    settings: dict[tuple, list[dict]] = {}
    for r in rows:
        settings.setdefault((r["optimizer"], r["learning_rate"], r["momentum"]), []).append(r)
    out = []
    for (optimizer, lr, mom), runs in settings.items():
        ok = [r for r in runs if not r["diverged"] and r["final_val_loss"] is not None]
        val = np.array([r["final_val_loss"] for r in ok], np.float64)
        acc = np.array([r["val_accuracy"] for r in ok], np.float64)
        out.append(
            {
                "optimizer": optimizer,
                "learning_rate": lr,
                "momentum": mom,
                "seeds": len(runs),
                "num_diverged": len(runs) - len(ok),
                "final_val_loss_mean": clean(val.mean()) if val.size else None,
                "final_val_loss_std": clean(val.std()) if val.size else None,
                "val_accuracy_mean": clean(acc.mean()) if acc.size else None,
            }
        )
    return out


def best_setting(results: dict[str, SweepResult], settings: list[dict]) -> dict:
    """The row of ``settings`` of the setting with the lowest mean final validation loss
    over its seeds, among those with no diverged seed (``SweepResult.best_setting`` of each
    optimizer's sweep, then the lowest of those)."""
    best = None
    for name, result in results.items():
        try:
            b = result.best_setting("final_val_loss", reduce="mean")
        except ValueError:
            continue
        if best is None or b["final_val_loss"] < best[1]["final_val_loss"]:
            best = (name, b)
    if best is None:
        raise ValueError("every setting of the sweep diverged; lower the learning rates.")
    name, b = best
    key = registry.get(name).momentum_key
    wanted = (name, plain(b["learning_rate"]), plain(b[key]) if key in b else None)
    for s in settings:
        if (s["optimizer"], s["learning_rate"], s["momentum"]) == wanted:
            return dict(s)
    raise AssertionError(f"the best setting {wanted} is not a row of the settings")


# --- 3. retraining with sharpness ------------------------------------------------------------


def retrain(model: Problem, ds, best: dict, config: DemoConfig, progress: bool):
    """Retrains the sweep's first seed of ``best`` with the sharpness callback.

    Uses the seed's keys (``jol.seed_keys``), so the run is the sweep's run again, now
    with the sharpness recorded.
    """
    entry = registry.get(best["optimizer"])
    tx = entry.make(best["learning_rate"], best["momentum"])
    subset = jax.tree.map(lambda a: a[: config.sharpness_examples], ds.train)
    # the threshold is the rule's own (tx carries it); an adaptive rule's is on the
    # preconditioned sharpness, read from its state during the run
    callback = curvature.sharpness_callback(
        model.loss_fn,
        subset,
        every=config.sharpness_every,
        preconditioned=entry.preconditioned,
        optimizer=tx,
    )
    init_key, data_key = seed_keys(0)
    return train(
        model.loss_fn,
        model.init_fn(init_key),
        tx,
        ds.train,
        steps=config.steps,
        batch_size=config.batch_size,
        key=data_key,
        eval_data=ds.validation,
        log_every=config.log_every,
        callbacks=[callback],
        divergence_factor=DIVERGENCE_FACTOR,
        progress=progress,
    )


# --- the whole demo --------------------------------------------------------------------------


class _Demo:
    """One demo run: the shared data, model, output folder and figures, a method per stage."""

    def __init__(self, out: Path, config: DemoConfig, progress: bool):
        self.out, self.config, self.progress = out, config, progress
        self.ds = datasets.digits()
        self.model = digits_mlp(config.hidden)
        self.figures: dict[str, str] = {}  # name -> file, relative to `out`

    def save(self, fig, name: str) -> None:
        plot.save(fig, self.out / f"{name}.png", dpi=self.config.dpi)
        self.figures[name] = f"{name}.png"

    def race(self) -> list[dict]:
        steps = self.config.race_steps or races.DEFAULT_STEPS
        race = races.race(steps)
        print(races.table(race))
        for land_name in steps:
            fig, _ = races.figure([r for r in race if r.landscape == land_name])
            self.save(fig, f"race_{land_name}")
        return [
            {
                "optimizer": r.optimizer,
                "display": r.display,
                "landscape": r.landscape,
                "learning_rate": r.learning_rate,
                "steps_to_target": r.steps_to_target,
                "final_loss": clean(r.final_loss),
            }
            for r in race
        ]

    def sweep(self) -> tuple[dict, dict]:
        c = self.config
        results = {f: _sweep_family(f, self.model, c, self.progress) for f in OPTIMIZERS}
        rows = sweep_rows(self.model, results, self.ds)
        settings = aggregate(rows)
        best = best_setting(results, settings)
        print(report.settings_table(settings, best))
        self.save(report.sweep_figure(results), "sweep")
        summary = {
            "optimizers": list(results),
            "learning_rates": list(c.learning_rates),
            "momenta": list(c.momenta),
            "seeds": c.seeds,
            "steps": c.steps,
            "batch_size": c.batch_size,
            "num_runs": len(rows),
            "num_diverged": sum(r["diverged"] for r in rows),
            "table": rows,
            "settings": settings,
        }
        return summary, best

    def retrain(self, sweep: dict, best: dict):
        trained = retrain(self.model, self.ds, best, self.config, self.progress)
        history = trained.history
        first_seed = next(
            r
            for r in sweep["table"]
            if (r["optimizer"], r["learning_rate"], r["momentum"], r["seed"])
            == (best["optimizer"], best["learning_rate"], best["momentum"], 0)
        )
        retrained = {
            "final_train_loss": clean(history["train_loss"][-1]),
            "final_val_loss": clean(history["val_loss"][-1]),
            "sweep_final_val_loss": first_seed["final_val_loss"],
            "train_accuracy": float(self.model.accuracy_fn(trained.params, self.ds.train)),
            "val_accuracy": float(self.model.accuracy_fn(trained.params, self.ds.validation)),
            "steps": self.config.steps,
            "seed": 0,
        }
        examples = min(self.config.sharpness_examples, len(self.ds.train.y))
        sharpness = sharpness_summary(history, best, examples)
        name = report.describe(best)
        fig, _ = plot.training_curves(history, title=f"digits MLP, {name}")
        self.save(fig, "training_curves")
        what = "preconditioned sharpness" if sharpness["quantity"] != "sharpness" else "sharpness"
        fig, ax = plot.sharpness(history, title=f"{what} on {examples} examples, {name}")
        ax.set_yscale("log")  # the bound can be far above the sharpness
        self.save(fig, "sharpness")
        return trained, retrained, sharpness

    def hessian(self, trained, best: dict) -> dict:
        c = self.config
        params = trained.params
        analysis = curvature.analyze(
            self.model.loss_fn,
            params,
            self.ds.train,
            method="lanczos",
            k=c.top_k,
            learning_rate=best["learning_rate"],
            key=jax.random.key(0),
        )
        density = curvature.density(
            self.model.loss_fn,
            params,
            self.ds.train,
            num_probes=c.density_probes,
            num_nodes=c.density_nodes,
            key=jax.random.key(1),
        )
        print(analysis)
        spectrum = spectrum_summary(analysis, c.top_k, density)
        entry = registry.get(best["optimizer"])
        preconditioned = None
        if entry.preconditioned:  # lambda_max(P^-1 H) with P from the final optimizer state
            eig = curvature.preconditioned_sharpness(
                self.model.loss_fn,
                params,
                self.ds.train,
                trained.opt_state,
                optimizer=entry.make(best["learning_rate"], best["momentum"]),
                key=jax.random.key(2),
            )
            preconditioned = float(eig.values[0])
            spectrum["preconditioned_sharpness"] = preconditioned
            print(f"  preconditioned sharpness lambda_max(P^-1 H)  {preconditioned:.6g}")
        spectrum["learning_rate_advice"] = learning_rate_advice(analysis, best, preconditioned)
        fig, _ = plot.spectral_density(
            density,
            eigenvalues=np.asarray(spectrum["top_eigenvalues"]),
            num_top=c.top_k,
            title=f"Hessian spectral density, trained MLP (D = {analysis.size:,})",
        )
        self.save(fig, "spectral_density")
        return spectrum


def _finding(f) -> dict:
    keys = ("problem", "level", "confidence", "summary", "workaround", "reference")
    return {k: getattr(f, k) for k in keys}


def run(out: Path, config: DemoConfig = FULL, *, progress: bool = True) -> dict:
    """Runs the demo, writes the report and figures into ``out``; returns the JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(total=6)
    demo = _Demo(out, config, progress)
    names = " and ".join(config.race_steps or races.DEFAULT_STEPS)
    clock.stage("race", f"the update rules raced on {names}")
    race = demo.race()
    clock.stage(
        "sweep",
        f"learning-rate sweep: {demo.model.num_params():,}-parameter MLP on digits, "
        f"{config.steps} steps, {config.seeds} seeds",
    )
    sweep, best = demo.sweep()
    clock.stage("retrain", f"retraining the best setting ({report.describe(best)})")
    trained, retrained, sharpness = demo.retrain(sweep, best)
    clock.stage("hessian", "Hessian of the trained net: Lanczos and spectral density")
    spectrum = demo.hessian(trained, best)
    clock.stage("diagnose", "diagnosis of the training curve")
    findings = diagnose(trained.history, best)
    print("\n".join(str(f) for f in findings) or "no problem found: a healthy curve")
    clock.stage("report", f"writing the report to {out}")
    result = {
        "title": "jaxopt-lab demo",
        "quick": config != FULL,
        "config": dataclasses.asdict(config),
        "model": {
            "kind": "flax.nnx MLP 64 -> tanh -> 10",
            "hidden": config.hidden,
            "num_params": demo.model.num_params(),
            "data": f"bundled 8x8 digits (UCI, CC BY 4.0): {len(demo.ds.train.y)} training, "
            f"{len(demo.ds.validation.y)} validation images",
        },
        "race": race,
        "sweep": sweep,
        "best": best,
        "retrained": retrained,
        "sharpness": sharpness,
        "curvature": spectrum,
        "findings": [_finding(f) for f in findings],
        "figures": demo.figures,
        "versions": report.versions(),
        "elapsed_seconds": {"stages": clock.stages, "total": None},
    }
    clock.stop()
    result["elapsed_seconds"]["total"] = clock.elapsed()
    report.write(out, result)
    print()
    print(report.summary(result, out))
    return result
