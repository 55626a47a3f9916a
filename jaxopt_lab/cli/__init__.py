"""The ``jaxopt-lab`` command: ``demo``, ``sweep``, ``compare``, ``hessian``, ``landscape``.

The application lives here, the library in the rest of the package (which never imports
this folder):

- :mod:`~jaxopt_lab.cli.parser` builds the parser from the subcommand modules
  :mod:`~jaxopt_lab.cli.demo`, :mod:`~jaxopt_lab.cli.sweep`,
  :mod:`~jaxopt_lab.cli.compare`, :mod:`~jaxopt_lab.cli.hessian` and
  :mod:`~jaxopt_lab.cli.landscape`, each with its ``add_parser`` and the function that
  runs it; :mod:`~jaxopt_lab.cli.args` holds the argument types and bounds they share;
- :mod:`~jaxopt_lab.cli.registry` is the one table of optimizers (name, how to build
  it, its momentum-like coefficient, its stability bound, its display name, its race
  settings), read by every subcommand, the demo, the report and the tests;
- :mod:`~jaxopt_lab.cli.problem`: loading what ``--problem`` names (a
  :class:`jaxopt_lab.problems.Problem`, re-exported here as :class:`Problem`);
  :mod:`~jaxopt_lab.cli.race` the race on the landscapes;
  :mod:`~jaxopt_lab.cli.analysis` and :mod:`~jaxopt_lab.cli.report` what the demo's
  numbers mean and how they are written.

Arguments are checked before anything is computed; a bad one gives a single line on
stderr, ``jaxopt-lab <command>: error: <what is wrong and how to fix it>``, and exit
status 2, never a traceback (set ``JAXOPT_LAB_TRACEBACK=1`` to see one for a failure
inside a command).
"""

from __future__ import annotations

import os
import sys

from jaxopt_lab.cli.args import UsageError, enable_compilation_cache, one_line
from jaxopt_lab.cli.parser import build_parser
from jaxopt_lab.cli.problem import Problem

__all__ = ["Problem", "UsageError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Runs ``jaxopt-lab`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from jaxopt_lab.cli.args import _unwritable

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `sweep --processes`
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
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
