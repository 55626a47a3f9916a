"""The cost of JAX's distributed runtime: one sweep in 1 process x 2 devices against
2 processes x 1 device, on this machine's CPU.

The 64-run sweep of ``bench_sweep.py`` (16 learning rates x 4 momenta of the digits MLP,
minibatch 32, 1000 steps; ``--quick``: 16 runs x 200 steps) runs in a job started by
``jol.distributed.launch`` (127.0.0.1, a free port): once as 1 process with 2 CPU
devices (``JAX_NUM_CPU_DEVICES=2``), once as 2 processes with 1 device each (gloo
collectives between them). Each job calls ``jol.sweep`` twice: the first call includes
compilation, the second finds the compiled program. Times are process 0's, from the
call to the result on the host (the two-process result gathered on both processes);
the jobs alternate, ``--repeats`` times, and the fastest of each is kept. The results
must be equal bit for bit (the same runs on the same 2 devices' programs); the script
says whether they are.

    python benchmarks/bench_scale.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def child(quick: bool, out: str) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_sweep
    import jax

    import jaxopt_lab as jol

    jol.distributed.initialize()
    data = jol.datasets.digits()
    lrs, momenta, steps = bench_sweep.settings(quick)
    times, finals = [], None
    for _ in range(2):
        start = time.perf_counter()
        finals = bench_sweep.run_sweep(data, lrs, momenta, steps, max_parallel=len(lrs))
        times.append(time.perf_counter() - start)
    if jax.process_index() == 0:
        with open(out, "w") as f:
            json.dump({"first": times[0], "warm": times[1], "finals": finals.tolist()}, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 runs x 200 steps")
    parser.add_argument("--repeats", type=int, default=3, help="jobs of each layout")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.quick, args.child)
        return
    from jaxopt_lab import distributed

    layouts = {"1 process x 2 devices": (1, 2), "2 processes x 1 device": (2, 1)}
    found: dict[str, list] = {k: [] for k in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, (processes, devices) in layouts.items():
                out = os.path.join(tmp, f"{r}_{processes}.json")
                cmd = [sys.executable, __file__, "--child", out] + ["--quick"] * args.quick
                done = distributed.launch(
                    cmd, processes, devices_per_process=devices, capture_output=True
                )
                for p in done:
                    if p.returncode:
                        sys.exit(f"{name}: a process failed:\n{p.stderr[-3000:]}")
                with open(out) as f:
                    found[name].append(json.load(f))
    runs = len(found[next(iter(layouts))][0]["finals"])
    print(
        f"sweep of {runs} runs, digits MLP, {os.cpu_count()} CPU cores; fastest of {args.repeats}"
    )
    best = {k: min(v, key=lambda x: x["warm"]) for k, v in found.items()}
    for name, b in best.items():
        every = ", ".join(f"{x['warm']:.2f}" for x in found[name])
        print(
            f"  {name:<24} warm {b['warm']:6.2f} s   first (compiling) "
            f"{min(x['first'] for x in found[name]):6.2f} s   (warm runs: {every})"
        )
    one, two = (best[k] for k in layouts)
    first = {k: min(x["first"] for x in v) for k, v in found.items()}
    one_first, two_first = (first[k] for k in layouts)
    print(
        f"  ratio 2 processes / 1 process: warm {two['warm'] / one['warm']:.3f}, "
        f"first {two_first / one_first:.3f}"
    )
    same = np.array_equal(np.asarray(one["finals"]), np.asarray(two["finals"]), equal_nan=True)
    print(f"  final losses bit for bit equal: {same}")


if __name__ == "__main__":
    main()
