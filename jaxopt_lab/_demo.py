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
   table on the terminal (:mod:`jaxopt_lab._demo_report`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxopt_lab import _demo_report, _landscape_demo, curvature, datasets, plot
from jaxopt_lab._demo_analysis import (
    diagnose,
    effective_rate,
    learning_rate_advice,
    sharpness_summary,
    spectrum_summary,
)
from jaxopt_lab._demo_model import DemoModel, make_model
from jaxopt_lab._demo_report import plain
from jaxopt_lab._families import FAMILIES
from jaxopt_lab.sweep import SweepResult, seed_keys, sweep
from jaxopt_lab.train import train

DIVERGENCE_FACTOR = 10.0  # a run whose loss exceeds 10x its initial value is frozen


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
    dpi: int = 110


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
    dpi=60,
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


def _finite(x: Any) -> float | None:
    """A JSON-safe float: None for NaN and infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


# --- 2. the sweep --------------------------------------------------------------------------


def sweep_digits(model: DemoModel, ds, family: str, grid: dict, **settings) -> SweepResult:
    """``jol.sweep`` of ``model`` on the digits over ``grid`` for an optimizer family:
    trained on ``ds.train``, validated on ``ds.validation``, runs frozen above
    ``DIVERGENCE_FACTOR`` times their initial loss. ``settings``: ``steps``, ``seeds``,
    ``batch_size``, ``log_every``, ``progress``."""
    return sweep(
        model.loss_fn,
        model.init_fn,
        FAMILIES[family].make_optimizer(grid),
        grid,
        ds.train,
        eval_data=ds.validation,
        divergence_factor=DIVERGENCE_FACTOR,
        **settings,
    )


def _sweep_family(family: str, model: DemoModel, ds, config: DemoConfig, progress: bool):
    momenta = list(config.momenta) if family == "momentum" else []
    grid = FAMILIES[family].grid(list(config.learning_rates), momenta)
    return sweep_digits(
        model,
        ds,
        family,
        grid,
        steps=config.steps,
        seeds=config.seeds,
        batch_size=config.batch_size,
        log_every=config.log_every,
        progress=progress,
    )


def _accuracies(model: DemoModel, result: SweepResult, split) -> np.ndarray:
    """Final accuracy of every run of a sweep on ``split``."""
    acc = jax.jit(jax.vmap(model.accuracy_fn, in_axes=(0, None)))(result.params, split)
    return np.asarray(acc, np.float64)


def sweep_rows(model: DemoModel, results: dict[str, SweepResult], ds) -> list[dict]:
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
                    "final_train_loss": _finite(table["final_train_loss"][i]),
                    "final_val_loss": _finite(table["final_val_loss"][i]),
                    "best_val_loss": _finite(table["best_val_loss"][i]),
                    "best_val_step": int(table["best_val_step"][i]),
                    "val_accuracy": None if diverged else _finite(acc[i]),
                    "diverged": diverged,
                }
            )
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per setting: the mean and spread over seeds, and how many diverged."""
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
                "final_val_loss_mean": _finite(val.mean()) if val.size else None,
                "final_val_loss_std": _finite(val.std()) if val.size else None,
                "val_accuracy_mean": _finite(acc.mean()) if acc.size else None,
            }
        )
    return out


def best_setting(settings: list[dict]) -> dict:
    """The setting with the lowest mean final validation loss among those with no
    diverged seed."""
    ok = [s for s in settings if s["num_diverged"] == 0 and s["final_val_loss_mean"] is not None]
    if not ok:
        raise ValueError("every setting of the sweep diverged; lower the learning rates.")
    return dict(min(ok, key=lambda s: s["final_val_loss_mean"]))


# --- 3. retraining with sharpness ------------------------------------------------------------


def retrain(model: DemoModel, ds, best: dict, config: DemoConfig, progress: bool):
    """Retrains the sweep's first seed of ``best`` with the sharpness callback.

    Uses the seed's keys (``jol.sweep.seed_keys``), so the run is the sweep's run again,
    now with the sharpness recorded.
    """
    fam = FAMILIES[best["optimizer"]]
    if best["momentum"] is None:
        tx = fam.build(best["learning_rate"])
    else:
        tx = fam.build(best["learning_rate"], best["momentum"])
    subset = jax.tree.map(lambda a: a[: config.sharpness_examples], ds.train)
    callback = curvature.sharpness_callback(
        model.loss_fn,
        subset,
        every=config.sharpness_every,
        learning_rate=effective_rate(best),
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
        self.model = make_model(config.hidden)
        self.figures: dict[str, str] = {}  # name -> file, relative to `out`

    def save(self, fig, name: str) -> None:
        fig.savefig(self.out / f"{name}.png", dpi=self.config.dpi)
        self.figures[name] = f"{name}.png"

    def race(self) -> list[dict]:
        race = _landscape_demo.race(self.config.race_steps or _landscape_demo.DEFAULT_STEPS)
        print(_landscape_demo.table(race))
        self.save(_landscape_demo.figure(race), "trajectories")
        return [
            {
                "optimizer": r.optimizer,
                "landscape": r.landscape,
                "learning_rate": r.learning_rate,
                "steps_to_target": r.steps_to_target,
                "final_loss": _finite(r.final_loss),
            }
            for r in race
        ]

    def sweep(self) -> tuple[dict, dict]:
        c = self.config
        results = {
            f: _sweep_family(f, self.model, self.ds, c, self.progress) for f in ("momentum", "adam")
        }
        rows = sweep_rows(self.model, results, self.ds)
        settings = aggregate(rows)
        best = best_setting(settings)
        print(_demo_report.settings_table(settings, best))
        self.save(_demo_report.sweep_figure(results), "sweep")
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
            "final_train_loss": _finite(history["train_loss"][-1]),
            "final_val_loss": _finite(history["val_loss"][-1]),
            "sweep_final_val_loss": first_seed["final_val_loss"],
            "train_accuracy": float(self.model.accuracy_fn(trained.params, self.ds.train)),
            "val_accuracy": float(self.model.accuracy_fn(trained.params, self.ds.validation)),
            "steps": self.config.steps,
            "seed": 0,
        }
        examples = min(self.config.sharpness_examples, len(self.ds.train.y))
        sharpness = sharpness_summary(history, best, examples)
        name = _demo_report.describe(best)
        self.save(plot.training_curves(history, title=f"digits MLP, {name}"), "training_curves")
        fig = plot.sharpness(history, title=f"sharpness on {examples} examples, {name}")
        fig.axes[0].set_yscale("log")  # the bound can be far above the sharpness
        self.save(fig, "sharpness")
        return trained, retrained, sharpness

    def hessian(self, params, best: dict) -> dict:
        c = self.config
        report = curvature.analyze(
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
        print(report)
        spectrum = spectrum_summary(report, c.top_k, density)
        spectrum["learning_rate_advice"] = learning_rate_advice(report, best)
        fig = plot.spectral_density(
            density,
            eigenvalues=np.asarray(spectrum["top_eigenvalues"]),
            num_top=c.top_k,
            title=f"Hessian spectral density, trained MLP (D = {report.size:,})",
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
    names = " and ".join(config.race_steps or _landscape_demo.DEFAULT_STEPS)
    clock.stage("race", f"the update rules raced on {names}")
    race = demo.race()
    clock.stage(
        "sweep",
        f"learning-rate sweep: {demo.model.num_params():,}-parameter MLP on digits, "
        f"{config.steps} steps, {config.seeds} seeds",
    )
    sweep, best = demo.sweep()
    clock.stage("retrain", f"retraining the best setting ({_demo_report.describe(best)})")
    trained, retrained, sharpness = demo.retrain(sweep, best)
    clock.stage("hessian", "Hessian of the trained net: Lanczos and spectral density")
    spectrum = demo.hessian(trained.params, best)
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
        "versions": _demo_report.versions(),
        "elapsed_seconds": {"stages": clock.stages, "total": None},
    }
    clock.stop()
    result["elapsed_seconds"]["total"] = clock.elapsed()
    _demo_report.write(out, result)
    print()
    print(_demo_report.summary(result, out))
    return result
