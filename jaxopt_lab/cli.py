"""The ``jaxopt-lab`` command: ``demo``, ``sweep``, ``hessian``, ``landscape``.

Arguments are checked before anything is computed; a bad one gives a single line on
stderr, ``jaxopt-lab <command>: error: <what is wrong and how to fix it>``, and exit
status 2, never a traceback (set ``JAXOPT_LAB_TRACEBACK=1`` to see one for a failure
inside a command). The work itself lives in :mod:`jaxopt_lab._commands` and
:mod:`jaxopt_lab._demo`.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable

from jaxopt_lab import _families, _landscape_demo
from jaxopt_lab.landscapes import REGISTRY

LANDSCAPES = tuple(REGISTRY)
FAMILIES = tuple(_families.FAMILIES)
RACERS = tuple(e.cli_name for e in _landscape_demo.ENTRIES)
LECTURE_GRID = "1,0.3,0.1,0.03,0.01,0.003"
DEFAULT_OUT = "jaxopt-lab-out"
STEPS_FIX = "train in several calls, or raise the bound in jaxopt_lab.cli"


class UsageError(Exception):
    """A bad combination of arguments, found after parsing; reported in one line."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {_one_line(_hint(message))}\n")


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _hint(message: str) -> str:
    """Adds a "did you mean" to argparse's invalid choices, and the ``=`` form for values
    that start with ``-``."""
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        choices = [c.strip(" '") for c in m.group(2).split(",")]
        close = difflib.get_close_matches(m.group(1), choices, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    if message.endswith("required: command"):
        message += " (demo, sweep, hessian or landscape; see jaxopt-lab --help)"
    m = re.match(r"argument (--\S+): expected one argument$", message)
    if m:
        message += f" (write {m.group(1)}=VALUE when the value starts with '-')"
    return message


# --- argument types: each raises ArgumentTypeError with the fix -----------------------------


def _numbers(text: str, what: str, example: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what} such as {example}, got {text!r}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be finite, got {text!r}")
    return values


def learning_rates(text: str) -> list[float]:
    """``"1,0.3,0.1"`` -> ``[1.0, 0.3, 0.1]``; every rate > 0."""
    values = _numbers(text, "learning rates", LECTURE_GRID)
    bad = [v for v in values if v <= 0]
    if bad:
        raise argparse.ArgumentTypeError(
            f"learning rates must be > 0, got {bad[0]:g}; e.g. {LECTURE_GRID}"
        )
    return values


def momenta(text: str) -> list[float]:
    """``"0,0.9"`` -> ``[0.0, 0.9]``; every value in [0, 1)."""
    values = _numbers(text, "momenta", "0,0.5,0.9")
    bad = [v for v in values if not 0 <= v < 1]
    if bad:
        raise argparse.ArgumentTypeError(
            f"momenta must be in [0, 1), got {bad[0]:g}; e.g. 0,0.5,0.9"
        )
    return values


def point(text: str) -> list[float]:
    """``"1,1"`` -> ``[1.0, 1.0]``."""
    return _numbers(text, "coordinates", "1,1")


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# Bounds on every size the command takes: generous, but each keeps the work to what a
# laptop finishes, and each is checked when the arguments are parsed (constant time).
MAX_STEPS = 1_000_000  # updates per run (sweep, hessian --model, landscape)
MAX_HIDDEN = 4096  # hidden units of the demo MLP
MAX_SEEDS = 1000
MAX_GRID = 1000  # values in one list or log grid (--num, --lrs, --momenta)
MAX_RUNS = 10_000  # runs of one sweep: settings x seeds
MAX_BATCH = 100_000
MAX_K = 50  # eigenvalues at each end on the Lanczos path (hessian --model demo)


def bounded_int(high: int, fix: str) -> Callable[[str], int]:
    """An integer in ``[1, high]``; ``fix`` says what to do about a larger one."""

    def check(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}; {fix}")
        return value

    check.__name__ = "whole number"
    return check


def _bounded_list(parse: Callable[[str], list[float]], what: str) -> Callable[[str], list]:
    def check(text: str) -> list[float]:
        if text.count(",") >= MAX_GRID:  # before parsing: constant work for a huge list
            raise argparse.ArgumentTypeError(f"at most {MAX_GRID} {what}, got more")
        return parse(text)

    check.__name__ = what
    return check


def batch_size(text: str) -> int | None:
    """An integer in ``[1, MAX_BATCH]``, or ``full`` (``None``: every example every step)."""
    if text.strip().lower() == "full":
        return None
    try:
        value = positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 or 'full', got {text!r}"
        ) from None
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BATCH:,} or 'full', got {value:,}")
    return value


def _choice(kind: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        name = text.strip().lower()
        if kind == "landscape":
            name = name.replace("-", "_")
        if name in choices:
            return name
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown {kind} {text!r}{hint} (choose from {', '.join(choices)})"
        )

    check.__name__ = kind
    return check


def racers(text: str) -> list[str]:
    """``"sgd,adam"`` -> names of race entries; ``all`` for every one."""
    if text.strip().lower() == "all":
        return list(RACERS)
    check = _choice("optimizer", RACERS)
    names = [check(p.replace("_", "-")) for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated optimizers such as sgd,adam")
    return list(dict.fromkeys(names))


# --- the parser -------------------------------------------------------------------------------


class _Help(argparse.HelpFormatter):
    """Wraps each line of the description and epilog on its own; shows real defaults."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + lead)
            for line in text.splitlines()
            for lead in [line[: len(line) - len(line.lstrip())]]
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _run(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from jaxopt_lab import _commands

        return getattr(_commands, name)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxopt-lab`` argument parser with its four subcommands."""
    parser = _Parser(
        prog="jaxopt-lab",
        description="A JAX optimization laboratory: update rules, vmapped sweeps, Hessians.",
        epilog="Start with `jaxopt-lab demo` (under a minute on a 2-core CPU).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    demo = sub.add_parser(
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
        formatter_class=_Help,
    )
    demo.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    demo.add_argument(
        "--quick", action="store_true", help="a small, fast variant (fewer steps, rates, seeds)"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.set_defaults(func=_run("demo"))

    sweep = sub.add_parser(
        "sweep",
        help="a vmapped learning-rate sweep of the demo MLP on digits",
        description=(
            "Trains the demo MLP on the bundled digits for every learning rate (and momentum) "
            "and seed, in one vmapped program; prints the table and the best setting by "
            "validation loss; writes sweep_<optimizer>.csv/.json/.png to --out."
        ),
        epilog="examples:\n  jaxopt-lab sweep --optimizer adam --lr-min 1e-4 --lr-max 1 --num 9"
        "\n  jaxopt-lab sweep --optimizer momentum --lrs 0.3,0.1,0.03 --momenta 0,0.5,0.9",
        formatter_class=_Help,
    )
    sweep.add_argument(
        "--optimizer",
        default="momentum",
        metavar="NAME",
        type=_choice("optimizer", FAMILIES),
        help=f"optimizer family: {', '.join(FAMILIES)}",
    )
    sweep.add_argument(
        "--lrs",
        type=_bounded_list(learning_rates, "learning rates"),
        metavar="LIST",
        default=None,
        help=f"comma-separated learning rates (default: the lectures' grid {LECTURE_GRID})",
    )
    sweep.add_argument(
        "--lr-min", type=positive_float, help="smallest rate of a log-spaced grid (with --lr-max)"
    )
    sweep.add_argument("--lr-max", type=positive_float, help="largest rate of a log-spaced grid")
    sweep.add_argument(
        "--num",
        type=bounded_int(MAX_GRID, "a sweep of more rates would not finish"),
        default=7,
        help="rates in the log grid",
    )
    sweep.add_argument(
        "--momenta",
        type=_bounded_list(momenta, "momenta"),
        metavar="LIST",
        default=None,
        help="comma-separated momenta in [0, 1): beta for momentum and nesterov (default "
        "0.9), b1 for adam, the velocity for rmsprop",
    )
    sweep.add_argument(
        "--seeds",
        type=bounded_int(MAX_SEEDS, "a handful of seeds gives the spread"),
        default=2,
        help="seeds per setting",
    )
    sweep.add_argument(
        "--steps", type=bounded_int(MAX_STEPS, STEPS_FIX), default=500, help="updates per run"
    )
    sweep.add_argument(
        "--batch-size", type=batch_size, default=32, help="examples per update, or 'full'"
    )
    sweep.add_argument(
        "--hidden",
        type=bounded_int(MAX_HIDDEN, "the digits have 64 features; e.g. --hidden 256"),
        default=32,
        help="hidden units of the MLP",
    )
    sweep.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sweep.set_defaults(func=_run("sweep"))

    hessian = sub.add_parser(
        "hessian",
        help="the curvature report of a landscape at a point, or of the trained demo MLP",
        description=(
            "Prints jol.curvature.analyze's report: eigenvalues, condition number, kind of "
            "point (minimum, maximum, saddle, degenerate, not critical), and the learning-rate "
            "bounds 2/lambda_max and 1/lambda_max. Landscapes are analyzed exactly in float64; "
            "--model demo trains the demo MLP briefly and analyzes it by Lanczos."
        ),
        epilog="examples:\n  jaxopt-lab hessian rosenbrock --at 1,1\n"
        "  jaxopt-lab hessian saddle\n  jaxopt-lab hessian --model demo --steps 300",
        formatter_class=_Help,
    )
    hessian.add_argument(
        "landscape",
        nargs="?",
        type=_choice("landscape", LANDSCAPES),
        help=f"a landscape: {', '.join(LANDSCAPES)}",
    )
    hessian.add_argument(
        "--at",
        type=point,
        metavar="X,Y",
        help="the point, comma-separated (default: the landscape's first critical point); "
        "negative values need '=': --at=-1.5,2",
    )
    hessian.add_argument(
        "--model", choices=("demo",), help="analyze the demo MLP after --steps of training"
    )
    hessian.add_argument(
        "--steps",
        type=bounded_int(MAX_STEPS, STEPS_FIX),
        default=500,
        help="--model demo: training steps",
    )
    hessian.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate to judge against 2/lambda_max (--model demo: also the training "
        "rate of SGD with momentum 0.9, default 0.1)",
    )
    hessian.add_argument(
        "--k",
        type=bounded_int(MAX_K, "the ends of the spectrum are what Lanczos finds; e.g. --k 5"),
        default=3,
        help="--model demo: eigenvalues at each end",
    )
    hessian.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    hessian.set_defaults(func=_run("hessian"))

    landscape = sub.add_parser(
        "landscape",
        help="optimizers raced on a 2-D landscape: table and trajectory figure",
        description=(
            "Runs the chosen update rules from the landscape's start and prints steps to a "
            "loss within 1e-6 of the minimum and the final loss; writes "
            "landscape_<name>.png with the trajectories on the contours. Rates are tuned on "
            "lecture_quadratic and rosenbrock, and follow the curvature (gradient-scaled "
            "rules) or the size of the box (adaptive rules) elsewhere; --lr sets one for all."
        ),
        epilog="example:\n  jaxopt-lab landscape beale --optimizers sgd,momentum,adam --steps 500",
        formatter_class=_Help,
    )
    landscape.add_argument(
        "landscape",
        nargs="?",
        default="rosenbrock",
        type=_choice("landscape", LANDSCAPES),
        help=f"the landscape: {', '.join(LANDSCAPES)}",
    )
    landscape.add_argument(
        "--optimizers",
        type=racers,
        default="all",
        metavar="LIST",
        help=f"comma-separated, or 'all': {', '.join(RACERS)}",
    )
    landscape.add_argument(
        "--steps",
        type=bounded_int(MAX_STEPS, STEPS_FIX),
        default=None,
        help="updates per optimizer (default: 2000; 10000 on rosenbrock)",
    )
    landscape.add_argument(
        "--lr", type=positive_float, default=None, help="one learning rate for every optimizer"
    )
    landscape.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    landscape.set_defaults(func=_run("landscape"))
    return parser


COMPILATION_CACHE = "~/.cache/jaxopt_lab/xla"


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for this process; returns its folder.

    The folder is ``$JAXOPT_LAB_COMPILATION_CACHE`` (``0`` or empty: off), by default
    ``~/.cache/jaxopt_lab/xla``: programs compiled by one run of the command are loaded,
    not compiled, by the next. A cache folder set already (``JAX_COMPILATION_CACHE_DIR``)
    is left as it is.
    """
    import jax

    folder = os.environ.get("JAXOPT_LAB_COMPILATION_CACHE", COMPILATION_CACHE)
    if folder.strip() in ("", "0"):
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = os.path.expanduser(folder)
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def _unwritable(folder: str) -> str:
    """Why the output ``folder`` cannot be written ('' if it can); creates it."""
    path = os.path.abspath(os.path.expanduser(folder))
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{folder!r} is a file, not a folder; pass a folder (new or existing)"
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return f"cannot write to {folder!r} ({e.strerror}); pass a folder you can write to"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Runs ``jaxopt-lab`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    prog = f"jaxopt-lab {args.command}"
    if extra:  # reported by the subcommand, like its other errors
        parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extra)}\n")
    out = getattr(args, "out", None)
    if out is not None:
        problem = _unwritable(out)
        if problem:  # before any training: the results would have nowhere to go
            parser.exit(2, f"{prog}: error: argument --out: {problem}\n")
    enable_compilation_cache()
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the final flush cannot fail again
        return 141  # 128 + SIGPIPE
    except (UsageError, ValueError, TypeError, OSError) as err:
        if os.environ.get("JAXOPT_LAB_TRACEBACK"):
            raise
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
