"""The GPU benchmark: a 1024-run sweep, the Adam step at 10M and 100M parameters, and the
top-5 Hessian eigenvalues of a 1M-parameter net, each against its alternative, in one run.

Run on a machine with one GPU (``benchmarks/gpu.sh`` wraps it with a time limit)::

    python benchmarks/bench_gpu.py            # the full sizes, a few minutes on one GPU
    python benchmarks/bench_gpu.py --quick    # small sizes: a smoke run, also on a CPU

1. A sweep of 1024 runs (64 learning rates x 16 momenta) of the digits MLP of
   ``bench_sweep.py`` (64-32-10, minibatch 32, 500 steps, losses logged every 50):
   ``jol.sweep`` against the hand-written ``jit(vmap(scan))`` of ``bench_sweep.py`` and
   the tutorial loop (a jitted step per setting and Python loops), the latter timed on
   its first 8 settings and scaled to 1024 (it is linear in the runs; said in the row).
   Times include compilation.
2. One jitted, buffer-donated Adam step at 10M and 100M float32 parameters:
   ``jol.adam`` against ``optax.adam`` and, with torch installed, ``torch.optim.Adam(
   fused=True)`` on the same device (``bench_update.py``'s timing, interleaved).
3. Top-5 Hessian eigenvalues of the 64-1024-1024-10 MLP (1,126,410 parameters) of
   ``bench_hessian.py`` on all 1797 digits: ``jol.curvature.eigenvalues(k=5)`` against
   PyHessian (power iteration with deflation, its defaults) on CUDA when installed.

Every row prints ours, theirs and the ratio ours / theirs (below 1: we are faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_hessian
import bench_sweep
import bench_update

import jaxopt_lab as jol


def row(label: str, ours: float, theirs: float, unit: str = "s", note: str = "") -> None:
    print(
        f"  {label:<54} {ours:>10.4g} {unit:<3} {theirs:>10.4g} {unit:<3} {ours / theirs:>7.3f}"
        f"  {note}".rstrip()
    )


def header() -> None:
    print(f"  {'':<54} {'ours':>14} {'theirs':>14} {'ratio':>7}")


def section_sweep(quick: bool) -> None:
    lrs = list(np.logspace(-3, 0, 16 if quick else 64))
    momenta = list(np.linspace(0.0, 0.99, 4 if quick else 16))
    steps = 100 if quick else 500
    data = jol.datasets.digits()
    runs = len(lrs) * len(momenta)
    print(f"\n== 1. sweep: {runs} runs x {steps} steps, MLP 64-32-10 on digits ==")
    header()
    start = time.perf_counter()
    ours = bench_sweep.run_sweep(data, lrs, momenta, steps)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    hand = bench_sweep.run_vmap_scan(data, lrs, momenta, steps)
    t_hand = time.perf_counter() - start
    few = min(8, len(momenta))
    start = time.perf_counter()
    bench_sweep.run_loop(data, lrs[:1], momenta[:few], steps)
    t_loop = (time.perf_counter() - start) * runs / few
    row("jol.sweep vs hand-written jit(vmap(scan))", t_ours, t_hand)
    row("jol.sweep vs tutorial loop", t_ours, t_loop, note=f"(loop: {few} runs, x {runs / few:g})")
    print(
        f"  jol.sweep: {int((~np.isfinite(ours)).sum())} of {runs} runs non-finite; "
        f"hand-written: {int((~np.isfinite(hand)).sum())} (they draw other minibatches)"
    )


def section_adam(quick: bool, torch_device: str | None) -> None:
    sizes = [1_000_000, 2_000_000] if quick else [10_000_000, 100_000_000]
    print("\n== 2. one jitted Adam step (update + apply, donated) ==")
    header()
    for n in sizes:
        runners = {
            "jol": bench_update.make_jax_stepper(jol.adam(1e-3), n),
            "optax": bench_update.make_jax_stepper(optax.adam(1e-3), n),
        }
        if torch_device:
            runners["torch"] = bench_update.make_torch_stepper(n, torch_device)
        iters = 20 if quick else 50
        t = bench_update.time_interleaved(runners, iters, 5 if quick else 11)
        row(f"{n:>11,} params: jol.adam vs optax.adam", t["jol"] * 1e3, t["optax"] * 1e3, "ms")
        if torch_device:
            row(
                f"{n:>11,} params: jol.adam vs torch fused ({torch_device})",
                t["jol"] * 1e3,
                t["torch"] * 1e3,
                "ms",
            )


def section_hessian(quick: bool, torch_device: str | None) -> None:
    hidden = (128, 128) if quick else bench_hessian.LARGE_HIDDEN
    x, y, _ = bench_hessian.load_digits()
    weights = bench_hessian.init_weights(hidden)
    loss, params = bench_hessian.jax_problem(weights)
    dim = sum(w.size + b.size for w, b in weights)
    print(
        f"\n== 3. top-5 Hessian eigenvalues, MLP 64-{'-'.join(map(str, hidden))}-10 "
        f"({dim:,} parameters) on 1797 digits =="
    )
    data = (jnp.asarray(x), jnp.asarray(y, jnp.int32))
    first, warm, eig = bench_hessian.timed(
        lambda: jol.curvature.eigenvalues(loss, params, data, k=5, tol=1e-4), repeats=3
    )
    print(
        f"  ours: {bench_hessian.fmt(eig.values)}  {int(eig.num_matvecs)} products, "
        f"first call {first:.2f} s (compiling)"
    )
    try:
        import torch
        from pyhessian import hessian as pyhessian
    except ImportError:
        print(f"  ours: {warm:.3f} s warm; PyHessian not installed: no comparison")
        return
    model = bench_hessian.torch_model(weights).to(torch_device or "cpu")
    tx = torch.from_numpy(x).to(torch_device or "cpu")
    ty = torch.from_numpy(y).to(torch_device or "cpu")
    criterion = torch.nn.CrossEntropyLoss()
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph")

    def theirs():
        torch.manual_seed(0)
        h = pyhessian(model, criterion, data=(tx, ty), cuda=torch_device == "cuda")
        return h.eigenvalues(top_n=5)[0]  # its defaults: maxIter=100, tol=1e-3

    theirs()
    start = time.perf_counter()
    values = theirs()
    t_theirs = time.perf_counter() - start
    header()
    row(f"eigenvalues(k=5) vs PyHessian ({torch_device or 'cpu'})", warm, t_theirs)
    print(f"  PyHessian: {bench_hessian.fmt(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", default="123", help="the sections to run, e.g. 13")
    args = parser.parse_args()
    try:
        import torch

        torch_device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_version = torch.__version__
    except ImportError:
        torch_device, torch_version = None, "not installed"
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}) x"
        f"{jax.device_count()}; torch {torch_version}"
        + (f" on {torch_device}" if torch_device else "")
    )
    if "1" in args.only:
        section_sweep(args.quick)
    if "2" in args.only:
        section_adam(args.quick, torch_device)
    if "3" in args.only:
        section_hessian(args.quick, torch_device)


if __name__ == "__main__":
    main()
