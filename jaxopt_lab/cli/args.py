"""Argument types and checks of the ``jaxopt-lab`` command, shared by every subcommand.

A bad argument gives a single line on stderr, ``jaxopt-lab <command>: error: <what is
wrong and how to fix it>``, and exit status 2, never a traceback. Every type here raises
``argparse.ArgumentTypeError`` with the fix; a bad combination found after parsing is a
:class:`UsageError`.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Callable

from jaxopt_lab.cli import registry
from jaxopt_lab.landscapes import REGISTRY

LANDSCAPES = tuple(REGISTRY)
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
        message += " (demo, sweep, compare, hessian or landscape; see jaxopt-lab --help)"
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


def number_above(low: float, *, strict: bool = True, example: str = "") -> Callable[[str], float]:
    """A finite number ``> low`` (``>= low`` with ``strict=False``); ``example`` in the fix."""
    op = ">" if strict else ">="
    fix = f"; e.g. {example}" if example else ""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number {op} {low:g}, got {text!r}"
            ) from None
        if not (math.isfinite(value) and (value > low if strict else value >= low)):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {op} {low:g}, got {text!r}{fix}"
            )
        return value

    check.__name__ = "number"
    return check


positive_float = number_above(0.0)  # a number > 0


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
        name = registry.canonical(text)  # `-` and `_` alike, for every kind
        if name in choices:
            return name
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown {kind} {text!r}{hint} (choose from {', '.join(choices)})"
        )

    check.__name__ = kind
    return check


def optimizer(text: str) -> str:
    """An optimizer of the registry (``-`` and ``_`` alike)."""
    return _choice("optimizer", registry.NAMES)(text)


def racers(text: str) -> list[str]:
    """``"sgd,adam"`` -> names of race entries; ``all`` for every one."""
    if text.strip().lower() == "all":
        return list(registry.RACERS)
    check = _choice("optimizer", registry.RACERS)
    names = [check(p) for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated optimizers such as sgd,adam")
    return list(dict.fromkeys(names))


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


def log_every(steps: int, rows: int = 50) -> int:
    """The largest divisor of ``steps`` that keeps at least ``rows`` history rows (or 1)."""
    from jaxopt_lab._loop._checks import default_log_every

    return default_log_every(steps, rows)


def problem(text: str) -> str:
    """``MODULE:FUNCTION`` or ``FILE.py:FUNCTION`` (imported when the command runs)."""
    module, sep, func = text.rpartition(":")
    if not sep or not module or not func.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected MODULE:FUNCTION (e.g. my_problem:make_problem), got {text!r}"
        )
    return text


def one_line(message: object) -> str:
    """``message`` on one line (the form every error of the command takes)."""
    return _one_line(str(message))
