"""jol.compare: families tuned alike, the better one by construction wins; intervals,
targets and profiles; the problem suite; `jaxopt-lab compare`."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _bad_cases_cli import Refused, refused
from scipy import stats

import jaxopt_lab as jol
from jaxopt_lab import cli

# module-scoped fixtures: the whole module on one worker builds them once
pytestmark = pytest.mark.xdist_group("compare")

LOGISTIC = jol.problems.logistic()
SMALL_LOGISTIC = jol.problems.Problem(
    loss_fn=LOGISTIC.loss_fn,
    init_fn=LOGISTIC.init_fn,
    data=jax.tree.map(lambda a: a[:256], LOGISTIC.data),
    eval_data=jax.tree.map(lambda a: a[:128], LOGISTIC.eval_data),
    name="logistic",
    steps=40,
    batch_size=32,
)


def _bowl_loss(params, batch):
    return 0.5 * jnp.mean(jnp.sum((params["w"][None, :] - batch) ** 2, axis=1))


BOWL = jol.problems.Problem(
    loss_fn=_bowl_loss,
    init_fn=lambda key: {"w": 3.0 + jax.random.normal(key, (4,))},
    data=jax.random.normal(jax.random.key(1), (64, 4)),
    eval_data=jnp.zeros((8, 4)),
    name="bowl",
    steps=40,
    batch_size=16,
    target=0.5,
)


def _sgd(hp):
    return optax.sgd(hp["learning_rate"])


# Better by construction: the same update rule, one searching rates 100x too small.
FAMILIES = {
    "good": (_sgd, jol.search.space(learning_rate=jol.search.log_uniform(0.05, 0.5))),
    "slow": (_sgd, jol.search.space(learning_rate=jol.search.log_uniform(1e-4, 1e-3))),
}


@pytest.fixture(scope="module")
def comparison():
    return jol.compare(FAMILIES, [BOWL, SMALL_LOGISTIC], trials=4, seeds=3, progress=False)


def test_the_family_that_is_better_by_construction_wins(comparison):
    c = comparison
    assert c.problems == ["bowl", "logistic"] and c.families == ["good", "slow"]
    for p in c.problems:
        assert c.winner(p) == "good"
        good, slow = c.entries[p]["good"], c.entries[p]["slow"]
        assert good.final_val.mean < slow.final_val.mean
        assert 0.05 <= good.best["learning_rate"] <= 0.5
        assert math.isfinite(good.steps_to_target) and math.isinf(slow.steps_to_target)
        assert good.divergence_rate == 0.0
        assert good.trial_scores.shape == (4,)
        # the best setting is the trial with the lowest search score (one seed: run = trial)
        k = int(np.argmin(good.trial_scores))
        lr = float(good.search.hparams["learning_rate"][k])
        assert good.best["learning_rate"] == pytest.approx(lr, rel=1e-6)
        # both families rerun with the same fresh seeds
        np.testing.assert_array_equal(good.rerun.seeds, [1, 2, 3])
        np.testing.assert_array_equal(slow.rerun.seeds, [1, 2, 3])


def test_intervals_contain_the_seed_means_and_are_t_intervals(comparison):
    for p in comparison.problems:
        for f in comparison.families:
            e = comparison.entries[p][f]
            final = e.rerun.curves["val_loss"][:, -1].astype(np.float64)
            assert e.final_val.mean == pytest.approx(final.mean(), rel=1e-12)
            assert e.final_val.low <= final.mean() <= e.final_val.high
            half = stats.t.ppf(0.975, 2) * final.std(ddof=1) / np.sqrt(3)
            assert e.final_val.high - e.final_val.low == pytest.approx(2 * half, rel=1e-9)
            best = np.min(e.rerun.curves["val_loss"], axis=1)
            assert e.best_val.low <= best.mean() <= e.best_val.high


def test_targets_and_steps_to_target(comparison):
    for p in comparison.problems:
        good = comparison.entries[p]["good"]
        mean = good.rerun.curves["val_loss"].astype(np.float64).mean(0)
        best = min(
            float(comparison.entries[p][f].rerun.curves["val_loss"].mean(0).min())
            for f in comparison.families
        )
        target = comparison.targets[p]
        assert target == pytest.approx(best + 0.05 * abs(best), rel=1e-6)
        first = int(np.flatnonzero(mean <= target)[0])
        assert good.steps_to_target == good.rerun.steps[first]
        assert good.seconds_to_target == pytest.approx(good.steps_to_target * good.seconds_per_step)


def test_profile_is_monotone_and_one_for_the_family_that_is_always_best(comparison):
    profile = comparison.profile(r_max=4)
    for f in comparison.families:
        assert np.all(np.diff(profile.fractions[f]) >= 0)
    assert profile.fractions["good"][0] == 1.0 and profile.fractions["good"][-1] == 1.0
    assert profile.scores["good"] == 1.0 and profile.scores["slow"] == 0.0
    text = comparison.format()
    assert "good (wins)" in text and "| slow |" in text
    data = json.loads(json.dumps(comparison.to_dict()))
    assert data["profile"]["scores"]["good"] == 1.0
    assert len(data["rows"]) == 4
    curves = comparison.tuning_curves()
    assert set(curves) == {"bowl", "logistic"} and curves["bowl"]["good"].shape == (4,)


def test_given_targets_and_successive_halving():
    c = jol.compare(
        {"good": FAMILIES["good"]},
        {"bowl": BOWL},
        trials=9,
        seeds=2,
        method="halving",
        target="problem",
        progress=False,
    )
    e = c.entries["bowl"]["good"]
    assert c.targets == {"bowl": 0.5}
    assert isinstance(e.search, jol.TuneResult)
    assert e.run_steps == e.search.run_steps < 9 * 40
    assert e.best == e.search.trials[e.search.best_trial]
    assert np.isinf(e.trial_scores).sum() == 8  # only the finalist has a score at the end


def test_problem_suite_objects_are_documented_and_train():
    for name, make in jol.problems.SUITE.items():
        p = make()
        assert isinstance(p, jol.problems.Problem) and p.description and p.target > 0
        assert p.steps and p.eval_data is not None and (make.__doc__ or "").strip()
        assert jol.problems.get(name) is p  # cached: compiled programs are reused
    q = jol.problems.quadratic_noisy()
    # the validation loss is f(w) - f* >= 0, zero at w* = b / eigenvalues
    b = np.asarray(q.eval_data[0])
    eig = np.geomspace(1.0, 100.0, 20)
    w_star = {"w": jnp.asarray(b / eig, jnp.float32)}
    assert float(q.loss_fn(w_star, q.eval_data)) == pytest.approx(0.0, abs=1e-3)
    # the minibatch gradient is unbiased, with variance noise^2 / S per coordinate
    grads = np.stack(
        [np.asarray(jax.grad(q.loss_fn)(w_star, q.data[i : i + 8])["w"]) for i in range(0, 1024, 8)]
    )
    assert np.abs(grads.mean(0)).max() < 0.1
    assert grads.var(0).mean() == pytest.approx(1.0 / 8, rel=0.2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"families": []}, "`families` is empty"),
        ({"families": ["sgd", "bogus"]}, "no optimizer family 'bogus'"),
        ({"families": {"x": (_sgd, "lr")}}, "`families\\['x'\\]`"),
        ({"problems": []}, "`problems` is empty"),
        ({"problems": ["nope"]}, "no problem 'nope'"),
        ({"method": "bayes"}, "`method`"),
        ({"tolerance": -1}, "`tolerance`"),
        ({"target": "problem", "problems": [SMALL_LOGISTIC]}, "has no target"),
        ({"target": {"other": 1.0}}, "`target` lacks"),
        ({"trials": 0}, "`trials`"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"families": FAMILIES, "problems": [BOWL], "trials": 2, "seeds": 2}
    args.update(kwargs)
    families, problems = args.pop("families"), args.pop("problems")
    with pytest.raises((ValueError, TypeError), match=match):
        jol.compare(families, problems, progress=False, **args)
    no_eval = jol.problems.Problem(loss_fn=_bowl_loss, init_fn=BOWL.init_fn, data=BOWL.data)
    with pytest.raises(ValueError, match="no eval_data"):
        jol.compare(FAMILIES, [no_eval], progress=False)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--optimizers", "sgd,bogus"], "--optimizers"),
        (["--optimizers", ","], "--optimizers"),
        (["--problems", "nope"], "--problems"),
        (["--problems", "no_such_module:make"], "--problems"),
        (["--trials", "0"], "--trials"),
        (["--seeds", "99999999"], "--seeds"),
        (["--tolerance", "-1"], "--tolerance"),
        (["--r-max", "1"], "--r-max"),
        (["--method", "bayes"], "--method"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_cli_bad_arguments_are_one_line_exit_2(argv, flag):
    with pytest.raises(Refused) as info:
        refused("compare", *argv, "--no-progress")()
    assert flag in str(info.value) and str(info.value).startswith("jaxopt-lab compare: error:")


def test_cli_writes_tables_json_and_pngs(tmp_path, capsys):
    code = cli.main(
        [
            "compare",
            "--optimizers",
            "sgd,adam",
            "--problems",
            "quadratic_noisy",
            "--trials",
            "3",
            "--seeds",
            "2",
            "--steps",
            "20",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "### quadratic_noisy" in out and "performance profile" in out
    md = (tmp_path / "compare.md").read_text()
    data = json.loads((tmp_path / "compare.json").read_text())
    assert {r["family"] for r in data["rows"]} == {"sgd", "adam"}
    assert data["settings"]["trials"] == 3 and data["settings"]["steps"] == {"quadratic_noisy": 20}
    for png in ("compare_profile.png", "compare_tuning.png", "compare_curves_0.png"):
        assert (tmp_path / png).stat().st_size > 1000 and f"]({png})" in md
