"""One jitted, buffer-donated update step (update + apply): jaxopt_lab vs optax (vs torch).

Times ``jol.adam`` against ``optax.adam`` and ``jol.momentum(form="accumulate")`` against
``optax.sgd(momentum=...)`` at 1M and 10M float32 parameters, side by side in one run,
and prints ours/theirs ratios. With torch installed (``pip install -e .[bench]``), also
times ``torch.optim.Adam(fused=True)`` on the same sizes.

    python benchmarks/bench_update.py [--sizes 1000000 10000000] [--repeats 7]

Each measurement: warm up, then the fastest of ``repeats`` blocks of ``iters`` steps,
the candidates interleaved block by block in a rotating order, so that load from other
work on a shared machine hits all of them alike. jol.adam and optax.adam compile to the
same fused XLA program on CPU (three loops: first moment, second moment, parameters),
so their ratio measures noise around 1. So does the last row, a second, separately
compiled ``optax.sgd(momentum=...)`` against the first: the noise floor of the
measurement on this machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jaxopt_lab as jol


def make_jax_stepper(tx, n):
    params = jnp.ones((n,), jnp.float32)
    grads = jnp.full((n,), 1e-3, jnp.float32)
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    carry = [params, state]

    def run(iters):
        p, s = carry
        for _ in range(iters):
            p, s = step(p, s, grads)
        jax.block_until_ready(p)
        carry[0], carry[1] = p, s

    return run


def make_torch_stepper(n, device="cpu"):
    import torch

    p = torch.nn.Parameter(torch.ones(n, dtype=torch.float32, device=device))
    p.grad = torch.full((n,), 1e-3, dtype=torch.float32, device=device)
    opt = torch.optim.Adam([p], lr=1e-3, fused=True)

    def run(iters):
        for _ in range(iters):
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    return run


def time_interleaved(runners: dict, iters: int, repeats: int) -> dict[str, float]:
    for run in runners.values():  # compile and warm up
        run(2)
    samples = {k: [] for k in runners}
    names = list(runners)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            t0 = time.perf_counter()
            runners[name](iters)
            samples[name].append((time.perf_counter() - t0) / iters)
    # the fastest block is the least disturbed by other work on a shared machine
    return {k: min(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    try:
        if args.no_torch:
            raise ImportError
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; optax {optax.__version__}; "
        f"torch {torch_version or 'not installed'}"
    )
    print(f"{'size':>10} {'pair':<34} {'ours ms':>9} {'theirs ms':>10} {'ratio':>7}")
    for n in args.sizes:
        iters = max(5, int(2e9 // (n * 10)))  # blocks of ~0.1 s, above timer noise
        runners = {
            "jol.adam": make_jax_stepper(jol.adam(1e-3), n),
            "optax.adam": make_jax_stepper(optax.adam(1e-3), n),
            "jol.momentum": make_jax_stepper(jol.momentum(1e-3, 0.9, form="accumulate"), n),
            "optax.sgd": make_jax_stepper(optax.sgd(1e-3, momentum=0.9), n),
            "optax.sgd again": make_jax_stepper(optax.sgd(1e-3, momentum=0.9), n),
        }
        if torch_version:
            runners["torch.Adam(fused)"] = make_torch_stepper(n)
        t = time_interleaved(runners, iters, args.repeats)
        rows = [
            ("adam: jol / optax", t["jol.adam"], t["optax.adam"]),
            ("momentum: jol / optax.sgd", t["jol.momentum"], t["optax.sgd"]),
        ]
        if torch_version:
            rows.append(("adam: jol / torch fused", t["jol.adam"], t["torch.Adam(fused)"]))
            rows.append(("adam: optax / torch fused", t["optax.adam"], t["torch.Adam(fused)"]))
        rows.append(("noise: optax.sgd / optax.sgd", t["optax.sgd again"], t["optax.sgd"]))
        for label, ours, theirs in rows:
            print(
                f"{n:>10} {label:<34} {ours * 1e3:>9.3f} {theirs * 1e3:>10.3f} "
                f"{ours / theirs:>7.3f}"
            )


if __name__ == "__main__":
    main()
