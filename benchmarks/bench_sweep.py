"""Sweep benchmark: jol.sweep against a tutorial loop, jol.train and a hand-written vmap.

64 runs (16 learning rates log-spaced 1e-3..1 x momenta 0, 0.5, 0.9, 0.99) of a 64-32-10
tanh MLP on the bundled digits, minibatch 32, 1000 steps of momentum SGD
(``jol.momentum`` in all three), the loss on a fixed 1024-example monitoring subset and
on the validation set recorded every 50 steps:

(a) ``jol.sweep``: every run in one vmapped, compiled program;
(b) what the optax/Flax tutorials teach today: for each setting, a ``jax.jit`` train
    step, and Python loops over epochs and minibatches (NumPy shuffling) around it;
(c) ``jol.train`` called once per setting;
(d) the fastest code a JAX expert writes without a library: ``jax.jit(jax.vmap(train_one))``
    over a ``lax.scan`` (an outer scan over logging blocks, an inner one over their steps),
    the minibatch indices precomputed on the host.

Then a net with state: 16 runs (8 learning rates x 2 seeds) x 300 steps of a Flax NNX CNN
(Conv 4 channels -> BatchNorm -> relu -> Dropout(0.2) -> Linear) with momentum SGD,
validation loss every 50 steps:

(e) ``jol.sweep`` with ``init_fn(key) -> nnx.Module``;
(f) the Flax tutorial loop: per run an ``nnx.Optimizer`` and an ``nnx.jit`` train step,
    ``model.train()`` / ``model.eval()``, Python loops over epochs and minibatches.

The cost of safety: (g) is (a) split into 4 chunks of 16 runs (``max_parallel=16``), (h)
the same with ``checkpoint_dir`` (each chunk saved with orbax-checkpoint, its checksum
and the program's fingerprint recorded).

Variant (a) also times a second identical call and a third with a new but identical
``lambda`` for ``make_optimizer``: the difference is the overhead of finding the compiled
program again by what it computes.

Each variant runs in a fresh subprocess; its time includes compilation (it is part of
what a user waits for) but not importing JAX or loading the data; CPU time (user +
system) is printed next to wall time, since other processes may share the machine.
Peak memory is the subprocess's maximum resident set size. With ``--repeats N``
(default 3) each variant runs N times, the variants interleaved (a, b, c, a, b, c, ...),
and the fastest run of each is reported, the one least disturbed by other work on a
shared machine. Run from the repository root::

    python benchmarks/bench_sweep.py           # the full benchmark
    python benchmarks/bench_sweep.py --quick   # 16 runs x 200 steps, a smoke test
    python benchmarks/bench_sweep.py --only gh # the cost of checkpoints alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab.sweep import seed_keys

MONITOR = 1024
LOG_EVERY = 50
BATCH = 32


def settings(quick: bool) -> tuple[list[float], list[float], int]:
    if quick:
        return list(np.logspace(-3, 0, 8)), [0.0, 0.9], 200
    return list(np.logspace(-3, 0, 16)), [0.0, 0.5, 0.9, 0.99], 1000


def init_fn(key: jax.Array) -> dict:
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, 32)) / 8.0,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(k2, (32, 10)) / np.sqrt(32.0),
        "b2": jnp.zeros(10),
    }


def loss_fn(params: dict, batch) -> jax.Array:
    hidden = jnp.tanh(batch.x @ params["w1"] + params["b1"][None, :])
    logits = hidden @ params["w2"] + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def make_optimizer(hparams) -> optax.GradientTransformation:
    return jol.momentum(hparams["learning_rate"], hparams["momentum"])


def run_sweep(data, lrs, momenta, steps, make=make_optimizer, **extra) -> np.ndarray:
    result = jol.sweep(
        loss_fn,
        init_fn,
        make,
        {"learning_rate": lrs, "momentum": momenta},
        data.train,
        steps=steps,
        batch_size=BATCH,
        eval_data=data.validation,
        log_every=LOG_EVERY,
        monitor_size=MONITOR,
        progress=False,
        **extra,
    )
    return result.table()["final_train_loss"]


def run_chunked_sweep(data, lrs, momenta, steps, checkpoint=False) -> np.ndarray:
    """(a) in 4 chunks of 16 runs; with ``checkpoint``, each chunk saved (orbax)."""
    with tempfile.TemporaryDirectory() as tmp:
        return run_sweep(
            data,
            lrs,
            momenta,
            steps,
            max_parallel=max(1, len(lrs) * len(momenta) // 4),
            checkpoint_dir=os.path.join(tmp, "ckpt") if checkpoint else None,
        )


def run_train(data, lrs, momenta, steps) -> np.ndarray:
    init_key, data_key = seed_keys(0)  # what the sweep uses for seed 0
    finals = []
    for lr in lrs:
        for beta in momenta:
            result = jol.train(
                loss_fn,
                init_fn(init_key),
                make_optimizer({"learning_rate": lr, "momentum": beta}),
                data.train,
                steps=steps,
                batch_size=BATCH,
                key=data_key,
                eval_data=data.validation,
                log_every=LOG_EVERY,
                monitor_size=MONITOR,
                divergence_factor=10.0,  # what the sweep does by default
                progress=False,
            )
            finals.append(result.history["train_loss"][-1])
    return np.asarray(finals)


def run_loop(data, lrs, momenta, steps) -> np.ndarray:
    """The tutorial pattern: a jitted step per setting, Python loops around it."""
    train_x, train_y = data.train.x, data.train.y
    n = train_x.shape[0]
    monitor = jax.tree.map(
        jnp.asarray, data.train._replace(x=train_x[:MONITOR], y=train_y[:MONITOR])
    )
    validation = jax.tree.map(jnp.asarray, data.validation)

    @jax.jit
    def eval_step(params):
        return loss_fn(params, monitor), loss_fn(params, validation)

    finals = []
    for lr in lrs:
        for beta in momenta:
            tx = make_optimizer({"learning_rate": lr, "momentum": beta})

            @jax.jit
            def train_step(params, opt_state, x, y, tx=tx):
                loss, grads = jax.value_and_grad(loss_fn)(params, data.train._replace(x=x, y=y))
                updates, opt_state = tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, loss

            params = init_fn(seed_keys(0)[0])
            opt_state = tx.init(params)
            rng = np.random.default_rng(0)
            history, step = [], 0
            while step < steps:
                perm = rng.permutation(n)
                for i in range(n // BATCH):
                    if step == steps:
                        break
                    if step % LOG_EVERY == 0:
                        history.append(eval_step(params))
                    idx = perm[i * BATCH : (i + 1) * BATCH]
                    params, opt_state, _ = train_step(params, opt_state, train_x[idx], train_y[idx])
                    step += 1
            history.append(eval_step(params))
            finals.append(float(history[-1][0]))
    return np.asarray(finals)


def run_sweep_twice(data, lrs, momenta, steps) -> np.ndarray:
    """(a), then the same call again and with a new identical lambda (the overhead)."""
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    finals = run_sweep(data, lrs, momenta, steps)
    EXTRA["seconds"], EXTRA["cpu"] = time.perf_counter() - start, _cpu_seconds() - cpu_start
    times = []
    for make in (make_optimizer, lambda h: jol.momentum(h["learning_rate"], h["momentum"])):
        start = time.perf_counter()
        run_sweep(data, lrs, momenta, steps, make)
        times.append(time.perf_counter() - start)
    EXTRA["repeat_seconds"], EXTRA["new_lambda_seconds"] = times
    return finals


def run_vmap_scan(data, lrs, momenta, steps) -> np.ndarray:
    """(d): one jitted vmap over runs of a scan over steps, written by hand.

    Timed from the start, as (a) is: the set-up (a jitted init, the minibatch indices, the
    data on the device) is part of what the user waits for.
    """
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    grid_lr, grid_mom = (
        np.asarray(v, np.float32).ravel() for v in np.meshgrid(lrs, momenta, indexing="ij")
    )
    train = jax.tree.map(jnp.asarray, data.train)
    monitor = jax.tree.map(lambda a: a[:MONITOR], train)
    validation = jax.tree.map(jnp.asarray, data.validation)
    n = train.x.shape[0]
    rng = np.random.default_rng(0)
    epochs = -(-steps * BATCH // n) + 1
    stream = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    indices = jnp.asarray(stream[: steps * BATCH].reshape(steps // LOG_EVERY, LOG_EVERY, BATCH))
    params0 = jax.jit(init_fn)(seed_keys(0)[0])

    def train_one(lr, beta, params):
        tx = jol.momentum(lr, beta)

        def step(carry, idx):
            params, opt_state = carry
            batch = jax.tree.map(lambda a: a[idx], train)
            grads = jax.grad(loss_fn)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def block(carry, idx):
            losses = (loss_fn(carry[0], monitor), loss_fn(carry[0], validation))
            carry, _ = jax.lax.scan(step, carry, idx)
            return carry, losses

        (params, _), history = jax.lax.scan(block, (params, tx.init(params)), indices)
        final = (loss_fn(params, monitor), loss_fn(params, validation))
        return jax.tree.map(lambda h, f: jnp.append(h, f), history, final)

    run = jax.jit(jax.vmap(train_one, in_axes=(0, 0, None)))
    args = (jnp.asarray(grid_lr), jnp.asarray(grid_mom), params0)
    history = jax.device_get(run(*args))
    EXTRA["seconds"], EXTRA["cpu"] = time.perf_counter() - start, _cpu_seconds() - cpu_start
    start = time.perf_counter()
    jax.device_get(run(*args))  # a repeat: the compiled program runs again
    EXTRA["repeat_seconds"] = time.perf_counter() - start
    return np.asarray(history[0][:, -1])


CNN_LRS = list(np.logspace(-2.5, 0, 8))
CNN_SEEDS = 2
CNN_STEPS = 300


class CNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(4 * 64, 10, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x.reshape(-1, 8, 8, 1))))
        return self.out(self.drop(h).reshape(x.shape[0], -1))


def cnn_loss(model, batch) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(batch.x), batch.y).mean()


def cnn_settings(quick: bool) -> tuple[list[float], int]:
    return (CNN_LRS[::2], 100) if quick else (CNN_LRS, CNN_STEPS)


def run_cnn_sweep(data, quick) -> np.ndarray:
    lrs, steps = cnn_settings(quick)
    result = jol.sweep(
        cnn_loss,
        lambda key: CNN(nnx.Rngs(key)),
        lambda h: jol.momentum(h["learning_rate"], 0.9),
        {"learning_rate": lrs},
        data.train,
        steps=steps,
        seeds=CNN_SEEDS,
        batch_size=BATCH,
        eval_data=data.validation,
        log_every=LOG_EVERY,
        monitor_size=MONITOR,
        progress=False,
    )
    return result.table()["final_val_loss"]


def run_cnn_loop(data, quick) -> np.ndarray:
    """The Flax NNX tutorial loop, once per run."""
    lrs, steps = cnn_settings(quick)
    train_x, train_y = data.train.x, data.train.y
    validation = jax.tree.map(jnp.asarray, data.validation)
    n = train_x.shape[0]

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(cnn_loss)(model, data.train._replace(x=x, y=y))
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def eval_step(model):
        return cnn_loss(model, validation)

    finals = []
    for lr in lrs:
        for seed in range(CNN_SEEDS):
            model = CNN(nnx.Rngs(seed_keys(seed)[0]))
            optimizer = nnx.Optimizer(model, jol.momentum(lr, 0.9), wrt=nnx.Param)
            rng = np.random.default_rng(seed)
            step = 0
            while step < steps:
                perm = rng.permutation(n)
                for i in range(n // BATCH):
                    if step == steps:
                        break
                    if step % LOG_EVERY == 0:
                        model.eval()
                        eval_step(model)
                        model.train()
                    idx = perm[i * BATCH : (i + 1) * BATCH]
                    train_step(model, optimizer, train_x[idx], train_y[idx])
                    step += 1
            model.eval()
            finals.append(float(eval_step(model)))
    return np.asarray(finals)


EXTRA: dict = {}
VARIANTS = {
    "a": run_sweep_twice,
    "b": run_loop,
    "c": run_train,
    "d": run_vmap_scan,
    "e": run_cnn_sweep,
    "f": run_cnn_loop,
    "g": run_chunked_sweep,
    "h": lambda *a: run_chunked_sweep(*a, checkpoint=True),
}
NAMES = {
    "a": "(a) jol.sweep",
    "b": "(b) tutorial loop, jit step per setting",
    "c": "(c) jol.train per setting",
    "d": "(d) hand-written jit(vmap(scan))",
    "e": "(e) jol.sweep, NNX CNN (BatchNorm, Dropout)",
    "f": "(f) NNX tutorial loop, CNN, per run",
    "g": "(g) jol.sweep in 4 chunks",
    "h": "(h) same, every chunk checkpointed",
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(variant: str, quick: bool) -> None:
    lrs, momenta, steps = settings(quick)
    data = jol.datasets.digits()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    if variant in "ef":
        finals = VARIANTS[variant](data, quick)
    else:
        finals = VARIANTS[variant](data, lrs, momenta, steps)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    if variant in "ad":  # the first call only (with compilation): repeats are timed apart
        seconds, cpu = EXTRA.pop("seconds"), EXTRA.pop("cpu")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "finals": finals.tolist()}
    print(json.dumps({**result, **EXTRA}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 runs x 200 steps")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", default="".join(VARIANTS), help="the variants to run, e.g. --only gh"
    )
    args = parser.parse_args()
    chosen = [v for v in VARIANTS if v in args.only]
    if not chosen:
        parser.error(f"--only {args.only!r} names no variant; choose from {''.join(VARIANTS)}")
    if args.child:
        child(args.child, args.quick)
        return

    lrs, momenta, steps = settings(args.quick)
    cnn_lrs, cnn_steps = cnn_settings(args.quick)
    print(
        f"{len(lrs) * len(momenta)} runs x {steps} steps, MLP 64-32-10 on digits, "
        f"batch {BATCH}; {len(cnn_lrs) * CNN_SEEDS} runs x {cnn_steps} steps, NNX CNN; "
        f"{jax.devices()[0].platform} x{jax.device_count()}, {os.cpu_count()} CPU cores"
    )
    runs = {v: [] for v in chosen}
    for _ in range(max(1, args.repeats)):
        for variant in chosen:
            cmd = [sys.executable, __file__, "--child", variant] + (["--quick"] * args.quick)
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    results = {v: min(r, key=lambda x: x["seconds"]) for v, r in runs.items()}
    for variant, r in results.items():
        every = ", ".join(f"{x['seconds']:.1f}" for x in runs[variant])
        print(
            f"{NAMES[variant]:44s} {r['seconds']:7.2f} s wall {r['cpu']:7.1f} s CPU"
            f"   peak RSS {r['peak_mb']:5.0f} MB   (runs: {every} s)"
        )
    t = {v: results[v]["seconds"] for v in chosen}
    cpu = {v: results[v]["cpu"] for v in chosen}
    full = not args.quick
    if "g" in t and "h" in t:
        print(
            f"cost of checkpoints, (h) / (g): {t['h'] / t['g']:.3f} wall, "
            f"{cpu['h'] / cpu['g']:.3f} CPU  (target <= 1.1)"
        )
        same = np.array_equal(results["g"]["finals"], results["h"]["finals"], equal_nan=True)
        print(f"(g) and (h) final train losses bitwise equal: {same}")
    if set("abcdef") - set(chosen):
        return
    print(
        f"speed-up of (a) over (b): {t['b'] / t['a']:5.1f}x wall, {cpu['b'] / cpu['a']:5.1f}x CPU"
        + ("  (target >= 10x)" if full else "  (targets are for the full run)")
    )
    print(
        f"speed-up of (a) over (c): {t['c'] / t['a']:5.1f}x wall, {cpu['c'] / cpu['a']:5.1f}x CPU"
        + ("  (target >= 1.3x)" if full else "")
    )
    print(
        f"(a) / (d), time with compilation: {t['a'] / t['d']:.3f} wall, "
        f"{cpu['a'] / cpu['d']:.3f} CPU" + ("  (target <= 1.05)" if full else "")
    )
    repeat_a = min(r["repeat_seconds"] for r in runs["a"])
    repeat_d = min(r["repeat_seconds"] for r in runs["d"])
    print(
        f"(a) / (d), a repeated call: {repeat_a:.3f} s / {repeat_d:.3f} s = "
        f"{repeat_a / repeat_d:.3f}" + ("  (target <= 1.0)" if full else "")
    )
    overhead = min(r["new_lambda_seconds"] - r["repeat_seconds"] for r in runs["a"])
    print(
        f"(a) again with a new identical lambda: {overhead:+.3f} s over the repeat "
        f"(target <= 0.1 s); runs: "
        + ", ".join(
            f"{r['new_lambda_seconds']:.3f} vs {r['repeat_seconds']:.3f} s" for r in runs["a"]
        )
    )
    print(
        f"speed-up of (e) over (f): {t['f'] / t['e']:5.1f}x wall, {cpu['f'] / cpu['e']:5.1f}x CPU"
        + ("  (target >= 5x)" if full else "")
    )
    fe, ff = np.asarray(results["e"]["finals"]), np.asarray(results["f"]["finals"])
    print(
        "(e) and (f) final validation loss (their minibatch order differs), median over runs: "
        f"{np.nanmedian(fe):.4f} and {np.nanmedian(ff):.4f}"
    )
    fd = np.asarray(results["d"]["finals"])
    print(
        "(a) and (d) best final train loss (minibatch order differs): "
        f"{np.nanmin(np.asarray(results['a']['finals'])):.4f} and {np.nanmin(fd):.4f}"
    )
    fa, fc = np.asarray(results["a"]["finals"]), np.asarray(results["c"]["finals"])
    finite = np.isfinite(fa) & np.isfinite(fc)
    rel = np.abs(fa - fc)[finite] / np.abs(fc[finite])
    print(
        f"(a) vs (c) final train loss, relative difference over the {finite.sum()} finite "
        f"runs: median {np.median(rel):.1e}, max {rel.max():.1e}"
    )
    # Runs at the edge of divergence are chaotic: a last-bit difference between the vmapped
    # and the single-run matmuls grows over 1000 steps. Name them rather than hide them.
    apart = [i for i in np.flatnonzero(finite) if abs(fa[i] - fc[i]) > 1e-3 * abs(fc[i])]
    print(
        f"runs differing by more than 1e-3 relative: {len(apart)} of {finite.sum()}"
        + "".join(
            f"; (lr {lrs[i // len(momenta)]:.3g}, momentum {momenta[i % len(momenta)]}): "
            f"{fa[i]:.4g} vs {fc[i]:.4g}"
            for i in apart
        )
    )
    best = [int(np.nanargmin(results[v]["finals"])) for v in "abc"]
    print(
        "best setting (learning rate, momentum) by final train loss: "
        + ", ".join(
            f"{v}: ({lrs[i // len(momenta)]:.3g}, {momenta[i % len(momenta)]})"
            for v, i in zip("abc", best, strict=True)
        )
    )


if __name__ == "__main__":
    main()
