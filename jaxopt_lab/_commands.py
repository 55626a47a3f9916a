"""What the ``jaxopt-lab`` subcommands do, once :mod:`jaxopt_lab.cli` has checked the arguments.

Each function takes the parsed ``argparse.Namespace``, prints its result, writes its files
and returns the exit status. A bad combination of arguments raises
:class:`jaxopt_lab.cli.UsageError` (reported in one line by ``cli.main``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import (
    _demo,
    _demo_analysis,
    _demo_report,
    _landscape_demo,
    curvature,
    datasets,
    landscapes,
)
from jaxopt_lab._demo_model import make_model
from jaxopt_lab._families import FAMILIES
from jaxopt_lab.cli import LECTURE_GRID, MAX_RUNS, UsageError
from jaxopt_lab.sweep import seed_keys
from jaxopt_lab.train import train


def demo(args: argparse.Namespace) -> int:
    """``jaxopt-lab demo``: see :mod:`jaxopt_lab._demo`."""
    config = _demo.QUICK if args.quick else _demo.FULL
    print(
        "jaxopt-lab demo"
        + (" --quick" if args.quick else "")
        + ": update rules, a vmapped sweep, a retrained net's Hessian, a diagnosis"
    )
    _demo.run(Path(args.out), config, progress=not args.no_progress)
    return 0


def log_every(steps: int, rows: int = 50) -> int:
    """The largest divisor of ``steps`` that keeps at least ``rows`` history rows (or 1).

    Divisors come in pairs ``(d, steps // d)``, so ``sqrt(steps)`` trials find them all.
    """
    limit = max(1, steps // rows)
    best = 1
    for d in range(1, math.isqrt(steps) + 1):
        if steps % d == 0:
            best = max(best, *(x for x in (d, steps // d) if x <= limit), 1)
    return best


# --- sweep ---------------------------------------------------------------------------------


def _grid_rates(args: argparse.Namespace) -> list[float]:
    span = args.lr_min is not None or args.lr_max is not None
    if args.lrs is not None and span:
        raise UsageError(
            "argument --lrs: give either --lrs or --lr-min/--lr-max, not both "
            f"(e.g. --lrs {LECTURE_GRID})"
        )
    if not span:
        return args.lrs or [float(x) for x in LECTURE_GRID.split(",")]
    if args.lr_min is None or args.lr_max is None:
        raise UsageError("argument --lr-min/--lr-max: give both, e.g. --lr-min 1e-3 --lr-max 1")
    if not args.lr_min < args.lr_max:
        raise UsageError(
            f"argument --lr-min: must be below --lr-max, got {args.lr_min:g} >= {args.lr_max:g}"
        )
    grid = np.geomspace(args.lr_max, args.lr_min, args.num)
    return [float(f"{x:.3g}") for x in grid]


def best_setting(result) -> dict:
    """The grid point with the lowest mean final validation loss, among those where no seed
    diverged (``SweepResult.aggregate``)."""
    agg = result.aggregate()
    loss = np.where(agg["num_diverged"] > 0, np.inf, agg["final_val_loss_mean"])
    loss = np.where(np.isnan(loss), np.inf, loss)
    if np.all(np.isinf(loss)):
        raise UsageError(
            "argument --lrs: every setting diverged in at least one seed; lower the rates"
        )
    i = int(np.argmin(loss))
    return {k: _demo_report.plain(v[i]) for k, v in agg.items()}


def sweep(args: argparse.Namespace) -> int:
    """``jaxopt-lab sweep``: one vmapped sweep of the demo MLP on digits."""
    family = FAMILIES[args.optimizer]
    rates = _grid_rates(args)
    try:
        grid = family.grid(rates, args.momenta)
    except ValueError as e:
        raise UsageError(f"argument --momenta: {e}") from None
    runs = math.prod(len(v) for v in grid.values()) * args.seeds
    if runs > MAX_RUNS:
        raise UsageError(
            f"argument --seeds: the sweep would train {runs:,} runs (settings x seeds), "
            f"at most {MAX_RUNS:,}; fewer rates, momenta or seeds"
        )
    ds = datasets.digits()
    if args.batch_size is not None and args.batch_size > ds.train.x.shape[0]:
        raise UsageError(
            f"argument --batch-size: at most {ds.train.x.shape[0]} (the training examples), "
            f"got {args.batch_size}; or 'full'"
        )
    model = make_model(args.hidden)
    sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    print(
        f"jaxopt-lab sweep: {args.optimizer}, {sizes} x {args.seeds} seeds, {args.steps} steps, "
        f"MLP with {model.num_params():,} parameters on digits"
    )
    result = _demo.sweep_digits(
        model,
        ds,
        args.optimizer,
        grid,
        steps=args.steps,
        seeds=args.seeds,
        batch_size=args.batch_size,
        log_every=log_every(args.steps),
        progress=not args.no_progress,
    )
    print(result.format())
    best = best_setting(result)
    setting = ", ".join(f"{k} {best[k]:g}" for k in grid)
    print(
        f"\nbest setting (lowest mean final validation loss over {args.seeds} seed(s), none "
        f"diverged): {args.optimizer}, {setting}: val loss {best['final_val_loss_mean']:.4f} "
        f"+- {best['final_val_loss_std']:.4f}; {int(result.diverged.sum())} of "
        f"{result.num_runs} runs diverged"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"sweep_{args.optimizer}"
    table = result.table()
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        for i in range(result.num_runs):
            writer.writerow([_demo_report.plain(table[k][i]) for k in table])
    payload = {
        "optimizer": args.optimizer,
        "grid": grid,
        "seeds": args.seeds,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "hidden": args.hidden,
        "table": [{k: v[i] for k, v in table.items()} for i in range(result.num_runs)],
        "best": best,
    }
    Path(f"{stem}.json").write_text(
        json.dumps(_demo_report.clean(payload), indent=2, allow_nan=False) + "\n"
    )
    fig = _demo_report.sweep_figure({args.optimizer: result})
    fig.savefig(f"{stem}.png", dpi=110)
    print(f"wrote {stem}.csv, {stem}.json, {stem}.png")
    return 0


# --- hessian -------------------------------------------------------------------------------


def hessian(args: argparse.Namespace) -> int:
    """``jaxopt-lab hessian``: a landscape at a point, or the briefly trained demo MLP."""
    if (args.landscape is None) == (args.model is None):
        raise UsageError(
            "give a landscape (e.g. `jaxopt-lab hessian rosenbrock --at 1,1`) or "
            "--model demo" + (", not both" if args.model else "")
        )
    if args.model is not None:
        return _hessian_model(args)
    land = landscapes.get(args.landscape)
    at = args.at
    if at is None:
        at = list(land.critical_points[0].location)
    if len(at) != land.dim:
        raise UsageError(
            f"argument --at: {land.name} takes {land.dim} coordinates (e.g. --at "
            f"{','.join('1' for _ in range(land.dim))}), got {len(at)}"
        )
    with jax.enable_x64(True):
        w = jnp.asarray(at, jnp.float64)
        report = curvature.analyze(land, w, learning_rate=args.lr)
    print(f"{land.name} at ({', '.join(f'{x:g}' for x in at)}), exact in float64")
    print(report)
    print(f"  eigenvalues (all)     {', '.join(f'{v:.8g}' for v in report.eigenvalues)}")
    known = [c for c in land.critical_points if np.allclose(c.location, at, atol=1e-6)]
    if known:
        print(f"  known critical point  {known[0].kind} (value {known[0].value:g})")
    return 0


def _hessian_model(args: argparse.Namespace) -> int:
    if args.at is not None:
        raise UsageError("argument --at: only for a landscape, not with --model demo")
    lr = 0.1 if args.lr is None else args.lr
    model = make_model(_demo.FULL.hidden)
    ds = datasets.digits()
    print(
        f"jaxopt-lab hessian --model demo: {model.num_params():,}-parameter MLP, SGD with "
        f"momentum 0.9 at lr {lr:g} for {args.steps} steps on digits"
    )
    init_key, data_key = seed_keys(0)
    trained = train(
        model.loss_fn,
        model.init_fn(init_key),
        FAMILIES["momentum"].build(lr, 0.9),
        ds.train,
        steps=args.steps,
        batch_size=32,
        key=data_key,
        eval_data=ds.validation,
        log_every=log_every(args.steps),
        divergence_factor=_demo.DIVERGENCE_FACTOR,
        progress=not args.no_progress,
    )
    h = trained.history
    print(
        f"trained: train loss {h['train_loss'][-1]:.4f}, val loss {h['val_loss'][-1]:.4f}, "
        f"val accuracy {100 * float(model.accuracy_fn(trained.params, ds.validation)):.1f}%"
        + (" (diverged: lower --lr)" if h["diverged"][-1] else "")
    )
    report = curvature.analyze(
        model.loss_fn,
        trained.params,
        ds.train,
        method="lanczos",
        k=args.k,
        learning_rate=lr,
        key=jax.random.key(0),
    )
    print(report)
    best = {"optimizer": "momentum", "learning_rate": lr, "momentum": 0.9}
    print("advice:", _demo_analysis.learning_rate_advice(report, best)["text"])
    return 0


# --- landscape -----------------------------------------------------------------------------


def landscape(args: argparse.Namespace) -> int:
    """``jaxopt-lab landscape``: the race on one landscape, table and trajectory figure."""
    land = landscapes.get(args.landscape)
    entries = [_landscape_demo.entry(name) for name in args.optimizers]
    results = _landscape_demo.race_one(land, entries, args.steps, args.lr)
    print(_landscape_demo.table(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"landscape_{land.name}.png"
    _landscape_demo.figure(results).savefig(path, dpi=110)
    print(f"\nwrote {path}")
    return 0
