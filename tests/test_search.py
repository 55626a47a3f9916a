"""jol.search: ranges, samplers, and samples of trials as a sweep's settings."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import qmc

import jaxopt_lab as jol

SPACE = jol.search.space(
    learning_rate=jol.search.log_uniform(1e-4, 1.0), momentum=jol.search.uniform(0.0, 0.99)
)


def unit(trials):
    """The trials mapped back to [0, 1)^2 (log for the learning rate)."""
    lr = np.array([t["learning_rate"] for t in trials])
    mom = np.array([t["momentum"] for t in trials])
    return np.stack([(np.log(lr) - np.log(1e-4)) / -np.log(1e-4), mom / 0.99], axis=1)


@pytest.mark.parametrize("sampler", ["random", "quasirandom"])
def test_samples_are_in_range_and_reproducible_by_seed(sampler):
    trials = getattr(SPACE, sampler)(64, seed=3)
    assert len(trials) == 64 and all(sorted(t) == ["learning_rate", "momentum"] for t in trials)
    u = unit(trials)
    assert (u >= 0).all() and (u < 1).all()
    assert getattr(SPACE, sampler)(64, seed=3) == trials
    assert getattr(SPACE, sampler)(64, seed=4) != trials


def test_quasirandom_points_are_more_uniform_than_random_ones():
    for seed in range(5):
        quasi = qmc.discrepancy(unit(SPACE.quasirandom(64, seed=seed)))
        rand = qmc.discrepancy(unit(SPACE.random(64, seed=seed)))
        assert quasi < 0.5 * rand
    sobol = qmc.discrepancy(unit(SPACE.quasirandom(64, seed=0, method="sobol")))
    assert sobol < 0.5 * qmc.discrepancy(unit(SPACE.random(64, seed=0)))


def test_log_uniform_is_symmetric_in_log_space():
    lr = np.array([t["learning_rate"] for t in SPACE.random(20000, seed=0)])
    logs = np.log10(lr)  # uniform on [-4, 0]
    assert abs(np.median(logs) + 2) < 0.05
    assert abs((logs < -3).mean() - (logs > -1).mean()) < 0.02  # a decade each end
    assert abs((logs < -3).mean() - 0.25) < 0.02


def test_grid_is_the_product_of_evenly_spaced_points():
    trials = SPACE.grid({"learning_rate": 5, "momentum": 2})
    assert len(trials) == 10
    lrs = sorted({t["learning_rate"] for t in trials})
    np.testing.assert_allclose(lrs, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    assert sorted({t["momentum"] for t in trials}) == [0.0, 0.99]


def init_fn(key):
    return {"w": 0.01 * jax.random.normal(key, (64, 10)), "b": jnp.zeros(10)}


def loss_fn(p, b):
    logits = b.x @ p["w"] + p["b"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, b.y).mean()


def test_a_sample_of_trials_is_one_run_per_trial_and_seed():
    ds = jol.datasets.digits()
    trials = SPACE.quasirandom(5, seed=0)
    kw = {"steps": 20, "batch_size": 32, "log_every": 5, "progress": False, "max_parallel": 4}
    make = lambda h: jol.momentum(h["learning_rate"], h["momentum"])
    result = jol.sweep(loss_fn, init_fn, make, trials, ds.train, seeds=2, **kw)
    assert result.num_runs == 10  # 5 trials x 2 seeds, not a product
    for i, trial in enumerate(trials):
        for s in range(2):
            run = 2 * i + s
            assert result.seeds[run] == s
            for k, v in trial.items():
                assert result.hparams[k][run] == np.float32(v)
    # the same runs as the equivalent grid (the trials are a product here), bit for bit
    grid_trials = SPACE.grid({"learning_rate": 2, "momentum": 2})
    grid = {
        "learning_rate": sorted({t["learning_rate"] for t in grid_trials}),
        "momentum": sorted({t["momentum"] for t in grid_trials}),
    }
    by_trials = jol.sweep(loss_fn, init_fn, make, grid_trials, ds.train, **kw)
    by_grid = jol.sweep(loss_fn, init_fn, make, grid, ds.train, **kw)
    for k, v in by_grid.curves.items():
        np.testing.assert_array_equal(by_trials.curves[k], v)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: jol.search.log_uniform(0, 1), ValueError, "needs low > 0"),
        (lambda: jol.search.uniform(1, 1), ValueError, "`low` must be below `high`"),
        (lambda: jol.search.uniform("0", 1), TypeError, "`low` must be a number"),
        (lambda: jol.search.space(), ValueError, "at least one range"),
        (lambda: jol.search.space(lr=(1e-4, 1)), TypeError, "`lr` must be a range"),
        (lambda: SPACE.random(0), ValueError, "`n` must be"),
        (lambda: SPACE.quasirandom(8, method="lhs"), ValueError, "`method`"),
        (lambda: SPACE.grid({"learning_rate": 3}), ValueError, "lacks \\['momentum'\\]"),
    ],
)
def test_bad_search_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    ("trials", "message"),
    [
        ([], "non-empty list of trials"),
        ([{"learning_rate": 0.1}, {"lr": 0.1}], "`grid\\[1\\]` must be a dict with the keys"),
        ([{"learning_rate": float("nan")}], "non-finite"),
        (["0.1"], "`grid\\[0\\]` must be a non-empty dict"),
    ],
)
def test_bad_trials_are_named(trials, message):
    ds = jol.datasets.digits()
    with pytest.raises(ValueError, match=message):
        jol.sweep(
            loss_fn, init_fn, lambda h: optax.sgd(h["learning_rate"]), trials, ds.train, steps=2
        )
