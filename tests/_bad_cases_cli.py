"""Bad command lines: each refused in one line naming the flag, before any work."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

from _bad_cases import case

from jaxopt_lab import cli

_TMP = tempfile.mkdtemp(prefix="jaxopt-lab-bad-cli-")
A_FILE = os.path.join(_TMP, "a-file")
open(A_FILE, "w").close()


class Refused(Exception):
    """What the command printed on stderr when it exited with status 2."""


def refused(*argv: str):
    """Runs ``jaxopt-lab argv`` in this process; a refusal raises :class:`Refused`."""

    def call():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(list(argv))
            except SystemExit as e:
                code = e.code
        if code == 2:
            text = err.getvalue()
            assert text.count("\n") == 1 and "Traceback" not in text, text
            raise Refused(text)
        return code

    return call


HUGE = "99999999999"
CASES = [
    # the four hangs of the issue
    case("sweep --steps huge", refused("sweep", "--steps", HUGE), Refused, "--steps", "at most"),
    case("sweep --hidden huge", refused("sweep", "--hidden", "100000000"), Refused, "--hidden"),
    case(
        "hessian --k huge", refused("hessian", "--model", "demo", "--k", "100000"), Refused, "--k"
    ),
    case(
        "landscape --steps huge",
        refused("landscape", "rosenbrock", "--steps", "2000000000"),
        Refused,
        "--steps",
    ),
    # every other size, too large
    case("sweep --num huge", refused("sweep", "--num", HUGE), Refused, "--num", "at most"),
    case("sweep --seeds huge", refused("sweep", "--seeds", HUGE), Refused, "--seeds", "at most"),
    case(
        "sweep --batch-size huge", refused("sweep", "--batch-size", HUGE), Refused, "--batch-size"
    ),
    case(
        "sweep --batch-size above the data",
        refused("sweep", "--batch-size", "5000", "--no-progress"),
        Refused,
        "--batch-size",
        "1438",
    ),
    case(
        "hessian --steps huge",
        refused("hessian", "--model", "demo", "--steps", HUGE),
        Refused,
        "--steps",
    ),
    case(
        "sweep --lrs too many",
        refused("sweep", "--lrs", ",".join(["0.1"] * 2000)),
        Refused,
        "--lrs",
        "at most",
    ),
    case(
        "sweep --momenta too many",
        refused("sweep", "--momenta", ",".join(["0.5"] * 2000)),
        Refused,
        "--momenta",
    ),
    case(
        "sweep: too many runs",
        refused("sweep", "--lr-min", "1e-3", "--lr-max", "1", "--num", "1000", "--seeds", "11"),
        Refused,
        "--seeds",
        "10,000",
    ),
]
for flag, argv in (
    ("--steps", ("sweep",)),
    ("--seeds", ("sweep",)),
    ("--num", ("sweep",)),
    ("--hidden", ("sweep",)),
    ("--batch-size", ("sweep",)),
    ("--steps", ("landscape",)),
    ("--steps", ("hessian", "--model", "demo")),
    ("--k", ("hessian", "--model", "demo")),
):
    for value in ("0", "-3", "abc", "2.5", ""):
        CASES.append(
            case(
                f"{' '.join(argv)} {flag} {value!r}",
                refused(*argv, f"{flag}={value}"),
                Refused,
                flag,
            )
        )
CASES += [
    case("sweep --lrs non-number", refused("sweep", "--lrs", "0.1,abc"), Refused, "--lrs"),
    case("sweep --lrs nan", refused("sweep", "--lrs", "0.1,nan"), Refused, "--lrs", "finite"),
    case("sweep --lrs inf", refused("sweep", "--lrs", "inf"), Refused, "--lrs"),
    case("sweep --lrs negative", refused("sweep", "--lrs=-0.1"), Refused, "--lrs", "> 0"),
    case("sweep --lrs empty", refused("sweep", "--lrs", ""), Refused, "--lrs"),
    case("sweep --momenta 1", refused("sweep", "--momenta", "0,1"), Refused, "--momenta"),
    case("sweep --lr-min alone", refused("sweep", "--lr-min", "0.1"), Refused, "--lr-min"),
    case(
        "sweep --lr-min above --lr-max",
        refused("sweep", "--lr-min", "1", "--lr-max", "0.1"),
        Refused,
        "--lr-min",
    ),
    case("sweep --lr-min 0", refused("sweep", "--lr-min", "0"), Refused, "--lr-min"),
    case("sweep --optimizer unknown", refused("sweep", "--optimizer", "adamw"), Refused, "adamw"),
    case("sweep --out a file", refused("sweep", "--out", A_FILE), Refused, "--out", "a file"),
    case("demo --out a file", refused("demo", "--out", A_FILE), Refused, "--out", "a file"),
    case(
        "landscape --out below a file",
        refused("landscape", "--out", os.path.join(A_FILE, "below")),
        Refused,
        "--out",
        "cannot write",
    ),
    case("landscape unknown", refused("landscape", "rosenbrok"), Refused, "rosenbrock"),
    case(
        "landscape --optimizers unknown",
        refused("landscape", "--optimizers", "sgd,foo"),
        Refused,
        "foo",
    ),
    case("landscape --lr nan", refused("landscape", "--lr", "nan"), Refused, "--lr"),
    case(
        "hessian --at wrong size",
        refused("hessian", "rosenbrock", "--at", "1,1,1"),
        Refused,
        "--at",
    ),
    case(
        "hessian --at non-number", refused("hessian", "rosenbrock", "--at", "1,x"), Refused, "--at"
    ),
    case("hessian nothing to analyze", refused("hessian"), Refused, "--model"),
    case("hessian --lr 0", refused("hessian", "saddle", "--lr", "0"), Refused, "--lr"),
    case("unknown flag", refused("sweep", "--nope"), Refused, "--nope"),
    case("unknown command", refused("sweeep"), Refused, "sweep"),
]
