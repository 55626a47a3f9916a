"""``jaxopt-lab sweep``: one vmapped sweep of the demo MLP on digits, or of a user's problem."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from pathlib import Path

import jax
import numpy as np

from jaxopt_lab import distributed, plot
from jaxopt_lab.cli import args as a
from jaxopt_lab.cli import problem as problems
from jaxopt_lab.cli import registry, report
from jaxopt_lab.sweep import SweepResult, sweep

DIVERGENCE_FACTOR = 10.0  # a run whose loss exceeds 10x its initial value is frozen


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="a vmapped learning-rate sweep of the demo MLP on digits, or of your problem",
        description=(
            "Trains the problem (by default the demo MLP on the bundled digits; --problem "
            "for your own) for every learning rate (and momentum) and seed, in one vmapped "
            "program; prints the table and the best setting by mean final validation loss "
            "(training loss without validation data), skipping settings with a diverged "
            "seed; writes sweep_<optimizer>.csv/.json/.png to --out."
        ),
        epilog="examples:\n  jaxopt-lab sweep --optimizer adam --lr-min 1e-4 --lr-max 1 --num 9"
        "\n  jaxopt-lab sweep --optimizer momentum --lrs 0.3,0.1,0.03 --momenta 0,0.5,0.9"
        "\n  jaxopt-lab sweep --problem my_problem:make_problem --optimizer adam"
        "\n\nA problem is a function returning jaxopt_lab.cli.Problem(loss_fn=..., "
        "init_fn=... (or model=...), data=..., eval_data=...); see jaxopt_lab.cli.problem.",
        formatter_class=a._Help,
    )
    p.add_argument(
        "--optimizer",
        default="momentum",
        metavar="NAME",
        type=a.optimizer,
        help=f"one of {', '.join(registry.NAMES)} ('-' and '_' alike)",
    )
    p.add_argument(
        "--problem",
        type=a.problem,
        metavar="MODULE:FUNCTION",
        help="your problem: a function returning a jaxopt_lab.cli.Problem (default: the "
        "demo MLP on digits)",
    )
    p.add_argument(
        "--lrs",
        type=a._bounded_list(a.learning_rates, "learning rates"),
        metavar="LIST",
        default=None,
        help=f"comma-separated learning rates (default: the lectures' grid {a.LECTURE_GRID})",
    )
    p.add_argument(
        "--lr-min", type=a.positive_float, help="smallest rate of a log-spaced grid (with --lr-max)"
    )
    p.add_argument("--lr-max", type=a.positive_float, help="largest rate of a log-spaced grid")
    p.add_argument(
        "--num",
        type=a.bounded_int(a.MAX_GRID, "a sweep of more rates would not finish"),
        default=7,
        help="rates in the log grid",
    )
    p.add_argument(
        "--momenta",
        type=a._bounded_list(a.momenta, "momenta"),
        metavar="LIST",
        default=None,
        help="comma-separated momenta in [0, 1): beta for momentum and nesterov (default "
        "0.9), b1 for adam, the velocity for rmsprop",
    )
    p.add_argument(
        "--seeds",
        type=a.bounded_int(a.MAX_SEEDS, "a handful of seeds gives the spread"),
        default=2,
        help="seeds per setting",
    )
    p.add_argument(
        "--steps", type=a.bounded_int(a.MAX_STEPS, a.STEPS_FIX), default=500, help="updates per run"
    )
    p.add_argument(
        "--batch-size", type=a.batch_size, default=32, help="examples per update, or 'full'"
    )
    p.add_argument(
        "--hidden",
        type=a.bounded_int(a.MAX_HIDDEN, "the digits have 64 features; e.g. --hidden 256"),
        default=None,
        help="hidden units of the demo MLP (default 32; not with --problem)",
    )
    p.add_argument(
        "--processes",
        type=a.bounded_int(MAX_PROCESSES, "on one machine a few processes show the idea"),
        default=1,
        help="start this many local processes (127.0.0.1, a free port) as one JAX job; the "
        "runs are sharded over every process's devices (on a cluster, see the README)",
    )
    p.add_argument(
        "--devices-per-process",
        type=a.bounded_int(MAX_PROCESSES, "e.g. 2"),
        default=None,
        metavar="N",
        help="CPU devices in each process (JAX_NUM_CPU_DEVICES; with --processes)",
    )
    p.add_argument("--out", default=a.DEFAULT_OUT, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


MAX_PROCESSES = 64


def _launch(args: argparse.Namespace) -> int:
    """Runs this very command in ``--processes`` local processes; their exit status."""
    print(
        f"jaxopt-lab sweep: starting {args.processes} process(es) on 127.0.0.1"
        + (f", {args.devices_per_process} CPU device(s) each" if args.devices_per_process else "")
    )
    sys.stdout.flush()
    results = distributed.launch(
        [sys.executable, "-m", "jaxopt_lab.cli", *args.argv],
        args.processes,
        devices_per_process=args.devices_per_process,
    )
    failed = [(i, p.returncode) for i, p in enumerate(results) if p.returncode]
    if failed:
        print(
            "jaxopt-lab sweep: error: "
            + ", ".join(f"process {i} exited with status {code}" for i, code in failed),
            file=sys.stderr,
        )
        return max([2] + [code for _, code in failed if code > 0])
    return 0


def grid_rates(args: argparse.Namespace) -> list[float]:
    """The learning rates of the sweep: ``--lrs``, the log grid, or the lectures' grid."""
    span = args.lr_min is not None or args.lr_max is not None
    if args.lrs is not None and span:
        raise a.UsageError(
            "argument --lrs: give either --lrs or --lr-min/--lr-max, not both "
            f"(e.g. --lrs {a.LECTURE_GRID})"
        )
    if not span:
        return args.lrs or [float(x) for x in a.LECTURE_GRID.split(",")]
    if args.lr_min is None or args.lr_max is None:
        raise a.UsageError("argument --lr-min/--lr-max: give both, e.g. --lr-min 1e-3 --lr-max 1")
    if not args.lr_min < args.lr_max:
        raise a.UsageError(
            f"argument --lr-min: must be below --lr-max, got {args.lr_min:g} >= {args.lr_max:g}"
        )
    grid = np.geomspace(args.lr_max, args.lr_min, args.num)
    return [float(f"{x:.3g}") for x in grid]


def resolve_problem(args: argparse.Namespace) -> problems.Problem:
    """``--problem``'s problem, or the demo MLP with ``--hidden`` units."""
    if args.problem is None:
        return problems.digits_mlp(32 if args.hidden is None else args.hidden)
    if args.hidden is not None:
        raise a.UsageError("argument --hidden: only for the demo MLP, not with --problem")
    try:
        return problems.load(args.problem)
    except problems.ProblemError as e:
        raise a.UsageError(f"argument --problem: {e}") from None


def sweep_problem(
    problem: problems.Problem, entry: registry.Entry, grid: dict, **settings
) -> SweepResult:
    """``jol.sweep`` of ``problem`` over ``grid`` for one optimizer of the registry: runs
    frozen above ``DIVERGENCE_FACTOR`` times their initial loss. ``settings``: ``steps``,
    ``seeds``, ``batch_size``, ``log_every``, ``progress``."""
    return sweep(
        problem.loss_fn,
        problem.sweep_init_fn(),
        entry.make_optimizer(grid),
        grid,
        problem.data,
        eval_data=problem.eval_data,
        has_state=problem.has_state,
        divergence_factor=DIVERGENCE_FACTOR,
        **settings,
    )


def _examples(data) -> int:
    import jax

    return int(np.shape(jax.tree.leaves(data)[0])[0])


def run(args: argparse.Namespace) -> int:
    """One vmapped sweep: table and best setting on stdout, CSV, JSON and PNG in ``--out``.

    With ``--processes``, this command starts copies of itself as one JAX job
    (:func:`jaxopt_lab.distributed.launch`); each copy joins it first (before JAX
    computes anything), trains its share of the runs, and process 0 reports.
    """
    child = distributed.PROCESS_ID in os.environ
    if child:
        distributed.initialize()
    entry = registry.get(args.optimizer)
    rates = grid_rates(args)
    try:
        grid = entry.grid(rates, args.momenta)
    except ValueError as e:
        raise a.UsageError(f"argument --momenta: {e}") from None
    runs = math.prod(len(v) for v in grid.values()) * args.seeds
    if runs > a.MAX_RUNS:
        raise a.UsageError(
            f"argument --seeds: the sweep would train {runs:,} runs (settings x seeds), "
            f"at most {a.MAX_RUNS:,}; fewer rates, momenta or seeds"
        )
    problem = resolve_problem(args)
    examples = _examples(problem.data)
    if args.batch_size is not None and args.batch_size > examples:
        raise a.UsageError(
            f"argument --batch-size: at most {examples} (the training examples), "
            f"got {args.batch_size}; or 'full'"
        )
    if not child and (args.processes > 1 or args.devices_per_process is not None):
        return _launch(args)  # the arguments are checked: each process runs this command
    if jax.process_index() == 0:
        return _sweep_and_report(args, entry, grid, problem, write=True)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        _sweep_and_report(args, entry, grid, problem, write=False)  # its share of the runs
    return 0


def _sweep_and_report(args, entry, grid, problem, *, write: bool) -> int:
    """The sweep, its table and best setting on stdout and (``write``) its files."""
    sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    print(
        f"jaxopt-lab sweep: {entry.name}, {sizes} x {args.seeds} seeds, {args.steps} steps, "
        f"{problem.name} ({problem.num_params():,} parameters)"
    )
    result = sweep_problem(
        problem,
        entry,
        grid,
        steps=args.steps,
        seeds=args.seeds,
        batch_size=args.batch_size,
        log_every=a.log_every(args.steps),
        progress=not args.no_progress,
        devices=None,
    )
    if args.processes > 1 or args.devices_per_process is not None:
        print(f"(on {jax.process_count()} process(es), {jax.device_count()} device(s) in all)")
    print(result.format())
    try:
        best = result.best_setting()
    except ValueError:
        raise a.UsageError(
            "argument --lrs: every setting diverged in at least one seed; lower the rates"
        ) from None
    metric = "final_val_loss" if "final_val_loss" in best else "final_train_loss"
    what = "validation" if metric == "final_val_loss" else "training"
    setting = ", ".join(f"{k} {report.plain(best[k]):g}" for k in grid)
    print(
        f"\nbest setting (lowest mean final {what} loss over {args.seeds} seed(s), none "
        f"diverged): {entry.name}, {setting}: {what} loss {best[metric]:.4f} "
        f"+- {best[metric + '_std']:.4f}; {int(result.diverged.sum())} of "
        f"{result.num_runs} runs diverged"
    )
    if not write:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"sweep_{entry.name}"
    table = result.table()
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        for i in range(result.num_runs):
            writer.writerow([report.plain(table[k][i]) for k in table])
    payload = {
        "optimizer": entry.name,
        "problem": args.problem or "digits_mlp",
        "grid": grid,
        "seeds": args.seeds,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "num_params": problem.num_params(),
        "table": [{k: v[i] for k, v in table.items()} for i in range(result.num_runs)],
        "best": {k: v for k, v in best.items() if k != "runs"},
    }
    if args.problem is None:
        payload["hidden"] = 32 if args.hidden is None else args.hidden
    Path(f"{stem}.json").write_text(
        json.dumps(report.clean(payload), indent=2, allow_nan=False) + "\n"
    )
    on = "digits" if args.problem is None else problem.name
    plot.save(report.sweep_figure({entry.name: result}, on=on), f"{stem}.png")
    print(f"wrote {stem}.csv, {stem}.json, {stem}.png")
    return 0
