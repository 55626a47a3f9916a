"""``jaxopt-lab compare``: optimizer families tuned alike on a suite of problems
(``jol.compare``), with tables, performance profiles and tuning curves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxopt_lab import plot
from jaxopt_lab import problems as suite
from jaxopt_lab.cli import args as a
from jaxopt_lab.cli import problem as problems
from jaxopt_lab.tuning import FAMILIES, Comparison, compare

DEFAULT_OPTIMIZERS = "sgd,momentum,adam"
DEFAULT_PROBLEMS = "quadratic_noisy,digits_mlp"
MAX_TRIALS = 1024


def _names(kind: str, choices: tuple[str, ...], allow_module: bool = False):
    one = a._choice(kind, choices)

    def check(text: str) -> list[str]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind}s such as {','.join(choices[:2])}"
            )
        names = []
        for part in parts:
            if allow_module and ":" in part:
                names.append(a.problem(part))
            else:
                names.append(one(part))
        return list(dict.fromkeys(names))

    check.__name__ = f"{kind}s"
    return check


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare optimizer families tuned alike on a suite of problems",
        description=(
            "Tunes each optimizer family on each problem with the same budget (--trials "
            "settings from its search space, quasirandom, all in one vmapped program), "
            "reruns each family's best setting with --seeds fresh seeds, and reports final "
            "and best validation loss with 95% intervals, steps and seconds to a target, "
            "the divergence rate of the search, AlgoPerf's performance profiles and the "
            "tuning curves. Writes compare.md, compare.json and PNGs to --out."
        ),
        epilog="examples:\n  jaxopt-lab compare"
        "\n  jaxopt-lab compare --optimizers sgd,momentum,nesterov,adam,rmsprop "
        "--problems quadratic_noisy,digits_mlp --trials 27 --seeds 5"
        "\n  jaxopt-lab compare --problems my_problem:make_problem --method halving"
        f"\n\noptimizers: {', '.join(FAMILIES)}; problems: {', '.join(suite.SUITE)}, or "
        "MODULE:FUNCTION returning a jaxopt_lab.problems.Problem.",
        formatter_class=a._Help,
    )
    p.add_argument(
        "--optimizers",
        type=_names("optimizer", tuple(FAMILIES)),
        default=DEFAULT_OPTIMIZERS,
        metavar="LIST",
        help=f"comma-separated families, of {', '.join(FAMILIES)}",
    )
    p.add_argument(
        "--problems",
        type=_names("problem", tuple(suite.SUITE), allow_module=True),
        default=DEFAULT_PROBLEMS,
        metavar="LIST",
        help=f"comma-separated problems, of {', '.join(suite.SUITE)} (or MODULE:FUNCTION)",
    )
    p.add_argument(
        "--trials",
        type=a.bounded_int(MAX_TRIALS, "a few dozen trials cover a 2-D space"),
        default=27,
        help="settings drawn from each family's search space",
    )
    p.add_argument(
        "--seeds",
        type=a.bounded_int(a.MAX_SEEDS, "a handful of seeds gives the spread"),
        default=5,
        help="fresh seeds for the rerun of each best setting",
    )
    p.add_argument(
        "--search-seeds",
        type=a.bounded_int(a.MAX_SEEDS, "e.g. 1"),
        default=1,
        help="seeds per trial in the search",
    )
    p.add_argument(
        "--method",
        choices=("sweep", "halving"),
        default="sweep",
        help="every trial to the end (sweep), or successive halving",
    )
    p.add_argument(
        "--steps",
        type=a.bounded_int(a.MAX_STEPS, a.STEPS_FIX),
        default=None,
        help="updates per run (default: each problem's own)",
    )
    p.add_argument(
        "--target",
        choices=("best", "problem"),
        default="best",
        help="time to target: the best validation loss any family reached relaxed by "
        "--tolerance (best), or each problem's own target (problem)",
    )
    p.add_argument(
        "--tolerance",
        type=a.number_above(0.0, strict=False, example="0.1"),
        default=0.1,
        help="relative slack of --target best",
    )
    p.add_argument(
        "--r-max",
        type=a.number_above(1.0, example="4"),
        default=4.0,
        help="the performance profile's r_max",
    )
    p.add_argument("--out", default=a.DEFAULT_OUT, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def _resolve(names: list[str]) -> dict[str, suite.Problem]:
    """The suite's problems by name, and ``MODULE:FUNCTION`` ones (named by their
    ``name``, or the function's when they have none)."""
    out = {}
    for name in names:
        if ":" not in name:
            out[name] = suite.get(name)
            continue
        try:
            loaded = problems.load(name)
        except problems.ProblemError as e:
            raise a.UsageError(f"argument --problems: {e}") from None
        if loaded.eval_data is None:
            raise a.UsageError(
                f"argument --problems: {name} has no eval_data; a comparison measures "
                "validation loss"
            )
        label = loaded.name if loaded.name not in ("problem", name) else name.rpartition(":")[2]
        if label in out:
            raise a.UsageError(f"argument --problems: two problems are named {label!r}")
        out[label] = loaded
    return out


def run(args: argparse.Namespace) -> int:
    """The comparison: tables on stdout; compare.md, compare.json and PNGs in ``--out``."""
    probs = _resolve(args.problems)
    if args.target == "problem":
        missing = [n for n, p in probs.items() if p.target is None]
        if missing:
            raise a.UsageError(
                f"argument --target: problem {missing[0]} has no target of its own; use "
                "--target best"
            )
    print(
        f"jaxopt-lab compare: {', '.join(args.optimizers)} on {', '.join(probs)}; "
        f"{args.trials} trials x {args.search_seeds} seed(s) each ({args.method}), best "
        f"settings rerun with {args.seeds} fresh seeds"
    )
    result = compare(
        args.optimizers,
        probs,
        trials=args.trials,
        seeds=args.seeds,
        search_seeds=args.search_seeds,
        method=args.method,
        steps=args.steps,
        target=args.target,
        tolerance=args.tolerance,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(result, out, args.r_max)
    text = report(result, figures, args.r_max)
    (out / "compare.md").write_text(text)
    data = result.to_dict()
    data["profile_r_max"] = args.r_max
    (out / "compare.json").write_text(json.dumps(data, indent=2))
    print()
    print(text)
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'} and {len(figures)} PNGs")
    return 0


def write_figures(result: Comparison, out: Path, r_max: float) -> list[str]:
    """The profile, the tuning curves and each problem's rerun curves, as PNGs."""
    names = []
    fig, _ = plot.performance_profile(result.profile(r_max))
    names.append(plot.save(fig, out / "compare_profile.png").name)
    fig, _ = plot.tuning_curves(result)
    names.append(plot.save(fig, out / "compare_tuning.png").name)
    for i, p in enumerate(result.problems):
        fig, ax = plot.subplots(1, 1, figsize=(6.4, 4.0))
        for f in result.families:
            rerun = result.entries[p][f].rerun
            mean = np.where(rerun.diverged[:, None], np.nan, rerun.curves["val_loss"]).mean(0)
            ax.plot(rerun.steps, mean, label=f)
        ax.axhline(result.targets[p], color="0.4", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss (mean over seeds)")
        ax.set_yscale("log")
        ax.set_title(f"{p}: best settings, {result.settings['seeds']} fresh seeds")
        ax.legend()
        names.append(plot.save(fig, out / f"compare_curves_{i}.png").name)
    return names


def report(result: Comparison, figures: list[str], r_max: float) -> str:
    """compare.md: what was run, the tables, the profile and the figures."""
    s = result.settings
    lines = [
        "# Optimizer comparison",
        "",
        f"Families {', '.join(result.families)} on {', '.join(result.problems)}. Each family "
        f"draws {s['trials']} settings from its search space ({s['sampler']}, seed "
        f"{s['sample_seed']}), trained with {s['search_seeds']} seed(s) each "
        f"({s['method']}); the best setting (lowest final validation loss) is rerun with "
        f"{s['seeds']} fresh seeds. Intervals are 95% t-intervals of the mean over those "
        "seeds. Steps to target: the first logged step where the seed-mean validation loss "
        "is at or below the target "
        + (
            f"(the best any family reached, relaxed by {s['tolerance']:g} of it)."
            if s["target"] == "best"
            else "(each problem's own)."
        ),
        "",
        result.format(r_max),
        f"Performance profile score: the area under each family's profile up to r_max = "
        f"{r_max:g}, divided by r_max - 1 (AlgoPerf).",
        "",
    ]
    for name in figures:
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)
