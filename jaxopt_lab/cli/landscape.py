"""``jaxopt-lab landscape``: the race on one landscape, table and small-multiples figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxopt_lab import landscapes, plot
from jaxopt_lab.cli import args as a
from jaxopt_lab.cli import race, registry


def add_parser(sub) -> None:
    p = sub.add_parser(
        "landscape",
        help="optimizers raced on a 2-D landscape: table and trajectory figure",
        description=(
            "Runs the chosen update rules from the landscape's start and prints steps to a "
            "loss within 1e-6 of the minimum and the final loss; writes "
            "landscape_<name>.png: one panel per optimizer family, the same contours in "
            "each, every path coloured by step. Rates are tuned on lecture_quadratic and "
            "rosenbrock, and follow the curvature (gradient-scaled rules) or the size of "
            "the box (adaptive rules) elsewhere; --lr sets one for all."
        ),
        epilog="example:\n  jaxopt-lab landscape beale --optimizers sgd,momentum,adam --steps 500",
        formatter_class=a._Help,
    )
    p.add_argument(
        "landscape",
        nargs="?",
        default="rosenbrock",
        type=a._choice("landscape", a.LANDSCAPES),
        help=f"the landscape: {', '.join(a.LANDSCAPES)}",
    )
    p.add_argument(
        "--optimizers",
        type=a.racers,
        default="all",
        metavar="LIST",
        help=f"comma-separated, or 'all': {', '.join(registry.RACERS)}",
    )
    p.add_argument(
        "--steps",
        type=a.bounded_int(a.MAX_STEPS, a.STEPS_FIX),
        default=None,
        help="updates per optimizer (default: 2000; 10000 on rosenbrock)",
    )
    p.add_argument(
        "--lr", type=a.positive_float, default=None, help="one learning rate for every optimizer"
    )
    p.add_argument("--out", default=a.DEFAULT_OUT, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The race on one landscape: the table on stdout, the figure in ``--out``."""
    land = landscapes.get(args.landscape)
    entries = [registry.get(name) for name in args.optimizers]
    results = race.race_one(land, entries, args.steps, args.lr)
    print(race.table(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"landscape_{land.name}.png"
    fig, _ = race.figure(results)
    plot.save(fig, path)
    print(f"\nwrote {path}")
    return 0
