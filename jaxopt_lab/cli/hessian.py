"""``jaxopt-lab hessian``: the curvature report of a landscape at a point, of the demo MLP
after brief training, or of a user's problem (trained briefly, or read from a checkpoint)."""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxopt_lab import curvature, landscapes
from jaxopt_lab.cli import analysis, registry
from jaxopt_lab.cli import args as a
from jaxopt_lab.cli import problem as problems
from jaxopt_lab.cli.sweep import DIVERGENCE_FACTOR
from jaxopt_lab.sweep import seed_keys
from jaxopt_lab.train import train

TRAIN_LR = 0.1  # SGD with momentum 0.9, when the command trains the net itself
TRAIN_MOMENTUM = 0.9
DEMO_HIDDEN = 32


def add_parser(sub) -> None:
    p = sub.add_parser(
        "hessian",
        help="the curvature report of a landscape at a point, or of a trained net",
        description=(
            "Prints jol.curvature.analyze's report: eigenvalues, condition number, kind of "
            "point (minimum, maximum, saddle, degenerate, not critical), and the learning-rate "
            "bounds 2/lambda_max and 1/lambda_max. Landscapes are analyzed exactly in float64; "
            "a net (--model demo, or your --problem) is trained briefly with SGD + momentum "
            "0.9, or read from --checkpoint, and analyzed by Lanczos."
        ),
        epilog="examples:\n  jaxopt-lab hessian rosenbrock --at 1,1\n"
        "  jaxopt-lab hessian saddle\n  jaxopt-lab hessian --model demo --steps 300\n"
        "  jaxopt-lab hessian --problem my_problem:make_problem --checkpoint ckpt/",
        formatter_class=a._Help,
    )
    p.add_argument(
        "landscape",
        nargs="?",
        type=a._choice("landscape", a.LANDSCAPES),
        help=f"a landscape: {', '.join(a.LANDSCAPES)}",
    )
    p.add_argument(
        "--at",
        type=a.point,
        metavar="X,Y",
        help="the point, comma-separated (default: the landscape's first critical point); "
        "negative values need '=': --at=-1.5,2",
    )
    p.add_argument(
        "--model", choices=("demo",), help="analyze the demo MLP after --steps of training"
    )
    p.add_argument(
        "--problem",
        type=a.problem,
        metavar="MODULE:FUNCTION",
        help="analyze your problem (a function returning a jaxopt_lab.cli.Problem)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="read the net's parameters from a jol.train checkpoint_dir or an orbax "
        "checkpoint instead of training",
    )
    p.add_argument(
        "--steps",
        type=a.bounded_int(a.MAX_STEPS, a.STEPS_FIX),
        default=None,
        help="training steps of the net (default 500; not with --checkpoint)",
    )
    p.add_argument(
        "--lr",
        type=a.positive_float,
        help="learning rate to judge against the stability bound (a net: also the training "
        f"rate of SGD with momentum {TRAIN_MOMENTUM}, default {TRAIN_LR})",
    )
    p.add_argument(
        "--k",
        type=a.bounded_int(a.MAX_K, "the ends of the spectrum are what Lanczos finds; e.g. --k 5"),
        default=3,
        help="a net: eigenvalues at each end",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A landscape at a point, or a net: the report on stdout."""
    nets = [x for x in (args.model, args.problem) if x is not None]
    if (args.landscape is None) == (not nets) or len(nets) > 1:
        raise a.UsageError(
            "give one of: a landscape (e.g. `jaxopt-lab hessian rosenbrock --at 1,1`), "
            "--model demo, or --problem MODULE:FUNCTION"
            + (", not several" if args.landscape is not None or len(nets) > 1 else "")
        )
    if nets:
        return _net(args)
    for flag in ("checkpoint", "steps"):
        if getattr(args, flag) is not None:
            raise a.UsageError(f"argument --{flag}: only for a net (--model demo or --problem)")
    land = landscapes.get(args.landscape)
    at = args.at
    if at is None:
        at = list(land.critical_points[0].location)
    if len(at) != land.dim:
        raise a.UsageError(
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


def _net(args: argparse.Namespace) -> int:
    if args.at is not None:
        raise a.UsageError("argument --at: only for a landscape, not with a net")
    if args.checkpoint is not None and args.steps is not None:
        raise a.UsageError(
            "argument --steps: the parameters come from --checkpoint; drop --steps (or "
            "--checkpoint to train here)"
        )
    if args.problem is None:
        problem = problems.digits_mlp(DEMO_HIDDEN)
    else:
        try:
            problem = problems.load(args.problem)
        except problems.ProblemError as e:
            raise a.UsageError(f"argument --problem: {e}") from None
    if problem.has_state:
        raise a.UsageError(
            "argument --problem: a model with state (has_state) is not analyzed from the "
            "command line; call jol.curvature.analyze with a loss that closes over the state"
        )
    lr = TRAIN_LR if args.lr is None else args.lr
    steps = 500 if args.steps is None else args.steps
    setting = {"optimizer": "momentum", "learning_rate": lr, "momentum": TRAIN_MOMENTUM}
    label = "--model demo" if args.problem is None else f"--problem {args.problem}"
    if args.checkpoint is not None:
        try:
            params = problems.load_params(problem, args.checkpoint)
        except problems.ProblemError as e:
            raise a.UsageError(str(e)) from None
        print(
            f"jaxopt-lab hessian {label}: {problem.num_params():,}-parameter {problem.name}, "
            f"parameters from {args.checkpoint}"
        )
        if isinstance(params, nnx.Module) and jax.tree.leaves(nnx.state(params, nnx.BatchStat)):
            print(
                "note: only the parameters (nnx.Param) are read from the checkpoint; the "
                "BatchNorm statistics are the problem's own, as its init_fn or model sets them"
            )
    else:
        print(
            f"jaxopt-lab hessian {label}: {problem.num_params():,}-parameter {problem.name}, "
            f"SGD with momentum {TRAIN_MOMENTUM} at lr {lr:g} for {steps} steps"
        )
        init_key, data_key = seed_keys(0)
        n = int(np.shape(jax.tree.leaves(problem.data)[0])[0])
        trained = train(
            problem.loss_fn,
            problem.start(init_key),
            registry.get("momentum").make(lr, TRAIN_MOMENTUM),
            problem.data,
            steps=steps,
            batch_size=min(32, n),
            key=data_key,
            eval_data=problem.eval_data,
            log_every=a.log_every(steps),
            divergence_factor=DIVERGENCE_FACTOR,
            progress=not args.no_progress,
        )
        h = trained.history
        params = trained.params if trained.model is None else trained.model
        line = f"trained: train loss {h['train_loss'][-1]:.4f}"
        if "val_loss" in h:
            line += f", val loss {h['val_loss'][-1]:.4f}"
        if problem.accuracy_fn is not None and problem.eval_data is not None:
            acc = float(problem.accuracy_fn(params, problem.eval_data))
            line += f", val accuracy {100 * acc:.1f}%"
        print(line + (" (diverged: lower --lr)" if h["diverged"][-1] else ""))
    report = curvature.analyze(
        problem.loss_fn,
        params,
        problem.data,
        method="lanczos",
        k=args.k,
        learning_rate=lr,
        key=jax.random.key(0),
    )
    print(report)
    print("advice:", analysis.learning_rate_advice(report, setting)["text"])
    return 0
