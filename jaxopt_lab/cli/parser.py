"""The ``jaxopt-lab`` argument parser: one subparser per subcommand module."""

from __future__ import annotations

import argparse

from jaxopt_lab.cli import args, compare, demo, hessian, landscape, sweep

SUBCOMMANDS = (demo, sweep, compare, hessian, landscape)  # each has add_parser(sub) and its run


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxopt-lab`` argument parser with its five subcommands."""
    parser = args._Parser(
        prog="jaxopt-lab",
        description="A JAX optimization laboratory: update rules, vmapped sweeps, Hessians.",
        epilog="Start with `jaxopt-lab demo` (under a minute on a 2-core CPU).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser
