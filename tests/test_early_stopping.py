"""Early stopping (lecture 003): a run stops after `patience` rows without improvement,
keeps its best parameters, and in a sweep each run stops on its own."""

import jax
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab.sweep import seed_keys

# module-scoped fixtures: the whole module on one worker builds them once
pytestmark = pytest.mark.xdist_group("early_stopping")

MLP = jol.problems.digits_mlp(16)
TRAIN = jax.tree.map(lambda a: a[:160], MLP.data)  # few examples: it overfits quickly
VALIDATION = jax.tree.map(lambda a: a[:160], MLP.eval_data)
SETTINGS = {"steps": 300, "batch_size": 32, "log_every": 10, "progress": False}


def _train(optimizer, **kwargs):
    return jol.train(
        MLP.loss_fn,
        MLP.init_fn(jax.random.key(0)),
        optimizer,
        TRAIN,
        key=jax.random.key(1),
        eval_data=VALIDATION,
        **{**SETTINGS, **kwargs},
    )


@pytest.fixture(scope="module")
def stopped():
    return _train(jol.adam(0.05), early_stopping=jol.train.EarlyStopping(patience=4))


def test_the_run_stops_after_patience_rows_without_improvement(stopped):
    h = stopped.history
    assert stopped.stopped and not stopped.diverged
    first = int(np.argmax(h["stopped"]))  # the row at which it stopped
    assert 0 < first < len(h["step"]) - 1
    val = h["val_loss"][: first + 1]
    best_row = int(np.argmin(val))
    assert h["step"][best_row] == stopped.best_step == h["best_step"][-1]
    assert first == best_row + 4  # four rows after the best, none better
    assert (np.minimum.accumulate(val)[best_row:] == val[best_row]).all()
    # stopped: frozen like a diverged run, its losses constant from then on
    assert np.all(h["train_loss"][first:] == h["train_loss"][first])
    assert np.all(h["stopped"][first:]) and not np.any(h["stopped"][:first])
    # the best parameters are those of the best row
    best_val = MLP.loss_fn(stopped.best_params, VALIDATION)
    np.testing.assert_allclose(best_val, h["val_loss"][best_row], rtol=1e-6)
    assert float(MLP.loss_fn(stopped.params, VALIDATION)) > float(best_val)


def test_a_run_that_keeps_improving_never_stops_and_min_delta_counts():
    slow = _train(jol.sgd(0.05), early_stopping=jol.train.EarlyStopping(patience=4))
    assert not slow.stopped and slow.best_step == SETTINGS["steps"]
    np.testing.assert_array_equal(
        slow.best_params["hidden"]["kernel"][...], slow.params["hidden"]["kernel"][...]
    )
    # the same run, but an improvement must beat the best by 1.0: it stops at row 4
    strict = _train(
        jol.sgd(0.05), early_stopping=jol.train.EarlyStopping(patience=4, min_delta=1.0)
    )
    assert strict.stopped and strict.best_step == 0
    assert int(np.argmax(strict.history["stopped"])) == 4


def test_without_early_stopping_nothing_changes(stopped):
    plain = _train(jol.adam(0.05))
    assert "stopped" not in plain.history and plain.best_params is None
    assert not plain.stopped
    first = int(np.argmax(stopped.history["stopped"]))
    for k in ("train_loss", "val_loss"):  # identical until the stop
        np.testing.assert_array_equal(
            plain.history[k][: first + 1], stopped.history[k][: first + 1]
        )


def test_in_a_sweep_each_run_stops_on_its_own():
    result = jol.sweep(
        MLP.loss_fn,
        MLP.init_fn,
        lambda hp: jol.adam(hp["learning_rate"]),
        {"learning_rate": [0.05, 0.001]},
        TRAIN,
        seeds=1,
        eval_data=VALIDATION,
        early_stopping=jol.train.EarlyStopping(patience=4),
        **SETTINGS,
    )
    stopped = result.curves["stopped"][:, -1]
    np.testing.assert_array_equal(stopped, [True, False])
    assert not result.diverged.any()
    # run 0 is jol.train's run with the same keys, to float32 rounding; params are its best
    init_key, data_key = seed_keys(0)
    alone = jol.train(
        MLP.loss_fn,
        MLP.init_fn(init_key),
        jol.adam(0.05),
        TRAIN,
        key=data_key,
        eval_data=VALIDATION,
        early_stopping=jol.train.EarlyStopping(patience=4),
        **SETTINGS,
    )
    assert result.curves["best_step"][0, -1] == alone.best_step
    got = jax.tree.map(lambda x: x[0], result.params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(alone.best_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("early_stopping", "error", "match"),
    [
        ("yes", TypeError, "`early_stopping` must be"),
        (jol.train.EarlyStopping(metric="accuracy"), ValueError, "`early_stopping.metric`"),
        (jol.train.EarlyStopping(patience=0), ValueError, "`early_stopping.patience`"),
        (jol.train.EarlyStopping(min_delta=-1.0), ValueError, "`early_stopping.min_delta`"),
    ],
)
def test_bad_early_stopping_is_named(early_stopping, error, match):
    with pytest.raises(error, match=match):
        _train(jol.sgd(0.1), early_stopping=early_stopping)


def test_val_loss_needs_eval_data():
    with pytest.raises(ValueError, match="needs `eval_data`"):
        jol.train(
            MLP.loss_fn,
            MLP.init_fn(jax.random.key(0)),
            jol.sgd(0.1),
            TRAIN,
            key=jax.random.key(1),
            early_stopping=jol.train.EarlyStopping(),
            **SETTINGS,
        )
