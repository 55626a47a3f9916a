"""The ``jaxopt-lab`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from jaxopt_lab import _landscape_demo

    steps = {"lecture_quadratic": 400, "rosenbrock": 2000} if args.quick else None
    print("jaxopt-lab demo: the lectures' update rules on 0.1 w1^2 + 2 w2^2 and Rosenbrock\n")
    _landscape_demo.main(Path(args.out), steps)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxopt-lab", description="A JAX optimization laboratory."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="race every update rule on the lectures' landscapes")
    demo.add_argument(
        "--out", default="jaxopt-lab-out", help="output folder (default: ./jaxopt-lab-out)"
    )
    demo.add_argument("--quick", action="store_true", help="fewer steps, for a smoke test")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"jaxopt-lab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
