"""Successive halving against the full grid of the same trials, on the digits MLP.

27 quasirandom settings of heavy-ball SGD (learning rate log-uniform in [1e-3, 1],
momentum uniform in [0, 0.99]) x 2 seeds, 300 steps of minibatch 32 on the 64-32-10
tanh MLP of ``jol.problems.digits_mlp``: once as one ``jol.sweep`` of every trial to the
end, once as ``jol.tune`` (eta = 3: rungs of 27, 9, 3 and 1 trials). Both run in this
process, alternating, ``--repeats`` times; each call's time includes its compilations
the first time and finds them compiled after (both are printed: cold is the first call,
warm the fastest later one). Printed: the run-steps each spends, the wall times and
their ratio, and the setting each picks with its final validation loss in the full
grid (mean over the 2 seeds), and whether halving's pick is the grid's best or within
the seed noise of it (the difference of the two means below twice its standard error).

    python benchmarks/bench_tune.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optax

import jaxopt_lab as jol


def make_optimizer(hp):
    return optax.sgd(hp["learning_rate"], momentum=hp["momentum"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="9 trials x 90 steps")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trials, steps = (9, 90) if args.quick else (27, 300)
    seeds = 2
    p = jol.problems.digits_mlp()
    space = jol.search.space(
        learning_rate=jol.search.log_uniform(1e-3, 1.0), momentum=jol.search.uniform(0.0, 0.99)
    )
    sample = space.quasirandom(trials, seed=0)
    common = {
        "seeds": seeds,
        "batch_size": p.batch_size,
        "eval_data": p.eval_data,
        "log_every": 10,
        "progress": False,
    }

    def full():
        return jol.sweep(
            p.loss_fn, p.init_fn, make_optimizer, sample, p.data, steps=steps, **common
        )

    def halving():
        return jol.tune(
            p.loss_fn, p.init_fn, make_optimizer, sample, p.data, budget_steps=steps, **common
        )

    times: dict[str, list[float]] = {"full grid": [], "halving": []}
    results = {}
    for _ in range(max(2, args.repeats)):
        for name, fn in (("full grid", full), ("halving", halving)):
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    grid, tuned = results["full grid"], results["halving"]
    final = grid.curves["val_loss"][:, -1].astype(np.float64).reshape(trials, seeds)
    final = np.where(grid.diverged.reshape(trials, seeds).any(1)[:, None], np.inf, final)
    mean = final.mean(1)
    best = int(np.argmin(mean))
    pick = tuned.best_trial
    diff = final[pick] - final[best]  # per seed: the same seeds, so paired
    se = diff.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else 0.0
    within = pick == best or (mean[pick] - mean[best]) <= 2 * se

    def setting(i):
        return ", ".join(f"{k}={v:.3g}" for k, v in sample[i].items())

    full_steps = grid.num_runs * steps
    print(
        f"digits MLP ({p.num_params():,} parameters), {trials} trials x {seeds} seeds, "
        f"{steps} steps, batch {p.batch_size}; rungs "
        f"{[(r.trials.size, r.steps) for r in tuned.rungs]} (trials, steps)"
    )
    print(
        f"{'':10s} {'run-steps':>10s} {'cold s':>8s} {'warm s':>8s}  pick "
        "(final val_loss in the full grid, mean of 2 seeds)"
    )
    for name, steps_spent, i in (
        ("full grid", full_steps, best),
        ("halving", tuned.run_steps, pick),
    ):
        t = times[name]
        print(
            f"{name:10s} {steps_spent:10,d} {t[0]:8.2f} {min(t[1:]):8.2f}  trial {i}: "
            f"{setting(i)} -> {mean[i]:.4f}"
        )
    warm = min(times["halving"][1:]) / min(times["full grid"][1:])
    print(
        f"ratio halving / full grid: run-steps {tuned.run_steps / full_steps:.3f}, "
        f"wall time warm {warm:.3f}, cold {times['halving'][0] / times['full grid'][0]:.3f}"
    )
    print(
        f"same best setting: {pick == best}; within the seed noise of it: {bool(within)} "
        f"(difference {mean[pick] - mean[best]:.4f}, 2 x standard error {2 * se:.4f})"
    )


if __name__ == "__main__":
    main()
