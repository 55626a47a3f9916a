"""jol.tune: successive halving keeps the known best, continues runs exactly, spends what
the formula says."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab.tuning import rung_schedule

# module-scoped fixtures: the whole module on one worker builds them once
pytestmark = pytest.mark.xdist_group("tune")

LOGISTIC = jol.problems.logistic()
TRAIN = jax.tree.map(lambda a: a[:256], LOGISTIC.data)  # small: the suite runs on 2 cores
VALIDATION = jax.tree.map(lambda a: a[:128], LOGISTIC.eval_data)
SPACE = jol.search.space(
    learning_rate=jol.search.log_uniform(1e-3, 3.0), momentum=jol.search.uniform(0.0, 0.9)
)


def heavy_ball(hp):
    return optax.sgd(hp["learning_rate"], momentum=hp["momentum"])


def bowl_loss(params, batch):
    del batch
    return 0.5 * jnp.sum(params["w"] ** 2)


def bowl_init(key):
    return {"w": jnp.ones(4) + 0.1 * jax.random.normal(key, (4,))}


BOWL_DATA = jnp.zeros((4, 1))


def test_rung_schedule_is_one_hyperband_bracket():
    assert rung_schedule(27, 270, 3, None, 1) == ([10, 30, 90, 270], [27, 9, 3, 1])
    assert rung_schedule(9, 90, 3, None, 10) == ([10, 30, 90], [9, 3, 1])
    assert rung_schedule(10, 100, 3, None, 1) == ([11, 33, 100], [10, 3, 1])
    assert rung_schedule(8, 64, 2, 8, 1) == ([8, 16, 32, 64], [8, 4, 2, 1])
    # rung ends round to log_every; rungs that coincide merge
    assert rung_schedule(27, 30, 3, None, 10) == ([10, 30], [27, 9])


def test_halving_keeps_the_known_best_and_drops_diverged_trials_at_once():
    # Gradient descent on 0.5 |w|^2: after t steps the loss is (1 - lr)^(2t) L0, so the
    # ranking by |1 - lr| is the same at every rung and lr = 1 is the best; lr >= 5 passes
    # 10x the initial loss in one step: diverged.
    lrs = [0.1, 0.3, 0.6, 1.0, 1.3, 1.7, 5.0, 6.0, 8.0]
    trials = [{"learning_rate": lr} for lr in lrs]
    result = jol.tune(
        bowl_loss,
        bowl_init,
        lambda hp: optax.sgd(hp["learning_rate"]),
        trials,
        BOWL_DATA,
        budget_steps=9,
        eta=3,
        eval_data=BOWL_DATA,
        progress=False,
    )
    assert [r.steps for r in result.rungs] == [1, 3, 9]
    first = result.rungs[0]
    assert np.isinf(first.score[6:]).all() and np.isfinite(first.score[:6]).all()
    np.testing.assert_array_equal(result.rungs[0].kept, [3, 4, 2])  # |1 - lr| order
    np.testing.assert_array_equal(result.rungs[1].trials, [2, 3, 4])
    assert result.best_trial == 3 and result.best["learning_rate"] == 1.0
    assert result.best["score"] == pytest.approx(0.0, abs=1e-12)
    # only finite trials are kept, even when the schedule has room for more
    few = jol.tune(
        bowl_loss,
        bowl_init,
        lambda hp: optax.sgd(hp["learning_rate"]),
        [{"learning_rate": lr} for lr in (0.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0)],
        BOWL_DATA,
        budget_steps=9,
        eval_data=BOWL_DATA,
        progress=False,
    )
    np.testing.assert_array_equal(few.rungs[0].kept, [0])
    assert few.best_trial == 0 and few.rungs[1].trials.size == 1
    assert few.run_steps == 9 * 1 + 1 * (9 - 1)  # the formula over the trials trained
    assert "rung 0" in few.format()


@pytest.fixture(scope="module")
def halving():
    kwargs = {"seeds": 2, "batch_size": 32, "eval_data": VALIDATION, "log_every": 5}
    kwargs.update(progress=False, max_parallel=3)
    tuned = jol.tune(
        LOGISTIC.loss_fn,
        LOGISTIC.init_fn,
        heavy_ball,
        SPACE,
        TRAIN,
        trials=9,
        budget_steps=60,
        **kwargs,
    )
    full = jol.sweep(
        LOGISTIC.loss_fn, LOGISTIC.init_fn, heavy_ball, tuned.trials, TRAIN, steps=60, **kwargs
    )
    return tuned, full


def test_survivors_curves_equal_the_uninterrupted_runs_bitwise(halving):
    tuned, full = halving
    runs = tuned.sweep
    assert runs.num_runs == full.num_runs == 18
    np.testing.assert_array_equal(runs.seeds, full.seeds)
    for name in ("learning_rate", "momentum"):
        np.testing.assert_array_equal(runs.hparams[name], full.hparams[name])
    assert tuned.finalists.size == 2  # one trial, two seeds
    stopped_rows = tuned.stopped // 5
    for metric, curves in runs.curves.items():
        for r in range(runs.num_runs):
            # every run is bitwise the full run up to its stop: rows before step `stopped`
            np.testing.assert_array_equal(
                curves[r, : stopped_rows[r]], full.curves[metric][r, : stopped_rows[r]]
            )
        np.testing.assert_array_equal(curves[tuned.finalists], full.curves[metric][tuned.finalists])
    stopped = tuned.stopped < 60
    assert np.isnan(runs.curves["val_loss"][stopped, -1]).all()
    for got, want in zip(jax.tree.leaves(tuned.params), jax.tree.leaves(full.params), strict=True):
        np.testing.assert_array_equal(got, np.asarray(want)[tuned.finalists])
    # the rung's score is the metric at its end: for the last rung, the curve's last row
    last = tuned.rungs[-1]
    want = full.curves["val_loss"][tuned.finalists, -1].mean()
    assert last.score[0] == pytest.approx(want, rel=1e-6)
    # and for rung 0 the evaluation at step r_0, as the full run logs it
    r0 = tuned.rungs[0].steps // 5
    means = full.curves["val_loss"][:, r0].reshape(9, 2).mean(1)
    np.testing.assert_allclose(tuned.rungs[0].score, means, rtol=1e-5)


def test_run_steps_equal_the_formula(halving):
    tuned, _ = halving
    ends = [r.steps for r in tuned.rungs]
    trained = [r.trials.size for r in tuned.rungs]
    assert ends == [5, 20, 60] and trained == [9, 3, 1]  # 60 / 9 rounds to 5
    expected = 2 * sum(n * (b - a) for n, a, b in zip(trained, [0, *ends[:-1]], ends, strict=True))
    assert tuned.run_steps == expected == 2 * (9 * 5 + 3 * 15 + 1 * 40)
    assert tuned.full_run_steps == 18 * 60
    assert tuned.savings == pytest.approx(expected / (18 * 60))
    np.testing.assert_array_equal(np.bincount(tuned.stopped)[[5, 20, 60]], [12, 4, 2])


def test_default_width_agrees_with_the_sweep_to_rounding():
    trials = SPACE.quasirandom(4, seed=1)
    tuned = jol.tune(
        LOGISTIC.loss_fn,
        LOGISTIC.init_fn,
        heavy_ball,
        trials,
        TRAIN,
        budget_steps=20,
        eta=2,
        batch_size=32,
        eval_data=VALIDATION,
        log_every=5,
        progress=False,
    )
    full = jol.sweep(
        LOGISTIC.loss_fn,
        LOGISTIC.init_fn,
        heavy_ball,
        trials,
        TRAIN,
        steps=20,
        batch_size=32,
        eval_data=VALIDATION,
        log_every=5,
        progress=False,
    )
    fin = tuned.finalists
    np.testing.assert_allclose(
        tuned.sweep.curves["val_loss"][fin], full.curves["val_loss"][fin], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": 1}, "`eta`"),
        ({"metric": "accuracy"}, "`metric`"),
        ({"eval_data": None}, "`metric`='val_loss' needs `eval_data`"),
        ({"trials": None}, "`trials`"),
        ({"budget_steps": 0}, "`budget_steps`"),
        ({"log_every": 7}, "`log_every`=7 must divide `budget_steps`=30"),
        ({"chunk_size": 4}, "`chunk_size`=4 must divide"),
        ({"min_steps": 31}, "`min_steps`"),
        ({"sampler": "grid"}, "`sampler`"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"trials": 3, "budget_steps": 30, "eval_data": VALIDATION, "batch_size": 32}
    args.update(progress=False, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        jol.tune(LOGISTIC.loss_fn, LOGISTIC.init_fn, heavy_ball, SPACE, TRAIN, **args)


def test_a_list_of_trials_with_another_count_is_refused():
    with pytest.raises(ValueError, match="`trials`=5 but `space` is a list of 3"):
        jol.tune(
            LOGISTIC.loss_fn,
            LOGISTIC.init_fn,
            heavy_ball,
            SPACE.random(3),
            TRAIN,
            trials=5,
            budget_steps=9,
            eval_data=VALIDATION,
        )
    with pytest.raises(TypeError, match="`space` must be"):
        jol.tune(LOGISTIC.loss_fn, LOGISTIC.init_fn, heavy_ball, "lr", TRAIN, budget_steps=9)
