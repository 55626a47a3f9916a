"""The command line with a user's own problem (``--problem``, ``--checkpoint``), and the
one optimizer registry every subcommand reads."""

import contextlib
import io
import json
import pathlib
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab import cli
from jaxopt_lab.cli import problem as problems
from jaxopt_lab.cli import registry

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "my_problem.py"

# A linear least-squares problem: small, fast, with a Hessian known in closed form
# (2/N X^T X for the mean squared error).
LINEAR = """
import jax, jax.numpy as jnp
from jaxopt_lab.cli import Problem

def make_problem():
    x = jax.random.normal(jax.random.key(0), (96, 4))
    y = x @ jnp.arange(1.0, 5.0)
    def loss_fn(params, batch):
        return jnp.mean((batch[0] @ params["w"] - batch[1]) ** 2)
    return Problem(
        loss_fn=loss_fn,
        init_fn=lambda key: {"w": 0.1 * jax.random.normal(key, (4,))},
        data=(x[:64], y[:64]),
        eval_data=(x[64:], y[64:]),
        name="linear",
    )

def as_dict():
    p = make_problem()
    return {"loss_fn": p.loss_fn, "init_fn": p.init_fn, "data": p.data}

def no_data():
    return {"loss_fn": make_problem().loss_fn, "init_fn": lambda key: {}}

def a_number():
    return 3

def raises():
    raise RuntimeError("the data folder is missing")

NOT_A_FUNCTION = 3
"""


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def linear(tmp_path, monkeypatch):
    (tmp_path / "linear_problem.py").write_text(textwrap.dedent(LINEAR))
    monkeypatch.chdir(tmp_path)  # `jaxopt-lab` finds MODULE on the current folder
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


# --- the registry ------------------------------------------------------------------------------


def test_one_spelling_per_optimizer_and_dash_or_underscore_alike():
    for name in registry.NAMES:
        assert name == registry.canonical(name) and "-" not in name
        assert registry.get(name.replace("_", "-")) is registry.get(name)
        assert registry.get(name.upper()) is registry.get(name)
        tx = registry.get(name).make(0.1)
        assert isinstance(tx, optax.GradientTransformation), name
    with pytest.raises(ValueError, match="did you mean 'sign_sgd'"):
        registry.get("sign_sdg")


def test_registry_stability_thresholds():
    # heavy ball beta = 0.9 at lr 0.1: 2 (1 + beta) / lr = 38; plain SGD 2 / lr = 20
    assert registry.get("momentum").threshold(0.1) == pytest.approx(38.0)
    assert registry.get("sgd").threshold(0.1) == pytest.approx(20.0)
    # Adam, b1 = 0.9: (2 + 2 b1) / ((1 - b1) lr) = 38 / lr, on the preconditioned Hessian
    adam = registry.get("adam")
    assert adam.threshold(1.0) == pytest.approx(38.0) and adam.preconditioned
    adagrad = registry.get("adagrad")  # 2 / lr, on its preconditioned Hessian
    assert adagrad.threshold(0.1) == pytest.approx(20.0) and adagrad.preconditioned
    assert registry.get("sign_sgd").threshold(0.1) is None  # no such bound
    # the label reads the coefficient from a sweep row: momentum 0 is plain SGD
    assert registry.get("momentum").label({"momentum": 0.0}) == "SGD"
    assert registry.get("momentum").label({"momentum": 0.5}) == "SGD + momentum 0.5"


def test_registry_builds_the_library_rules():
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}

    def first_update(tx):
        return tx.update(grads, tx.init(params), params)[0]["w"]

    for name, direct in [
        ("momentum", jol.momentum(0.1, 0.9)),
        ("adam", jol.adam(0.1, 0.9)),
        ("sign_sgd", jol.sign_sgd(0.1)),
        ("rmsprop", jol.rmsprop(0.1)),
    ]:
        np.testing.assert_array_equal(
            first_update(registry.get(name).make(0.1)), first_update(direct)
        )
    # the grid key of the coefficient is read by make_optimizer
    make = registry.get("adam").make_optimizer({"learning_rate": [0.1], "b1": [0.5]})
    np.testing.assert_array_equal(
        first_update(make({"learning_rate": jnp.float32(0.1), "b1": jnp.float32(0.5)})),
        first_update(jol.adam(0.1, 0.5)),
    )


def test_sweep_and_landscape_take_either_spelling(tmp_path):
    code, out, err = _run(
        [
            *("landscape", "lecture_quadratic", "--optimizers", "sign-sgd,normalized_sgd"),
            *("--steps", "20", "--out", str(tmp_path)),
        ]
    )
    assert code == 0, err
    assert "sign SGD" in out and "normalized SGD" in out


# --- --problem -----------------------------------------------------------------------------


def test_sweep_with_a_users_problem_module(linear):
    argv = ["sweep", "--problem", "linear_problem:make_problem", "--optimizer", "sgd"]
    argv += ["--lrs", "0.1,0.01", "--seeds", "2", "--steps", "40", "--batch-size", "full"]
    code, out, err = _run([*argv, "--out", "o", "--no-progress"])
    assert code == 0, err
    assert "linear (4 parameters)" in out
    saved = json.loads((linear / "o" / "sweep_sgd.json").read_text())
    assert saved["problem"] == "linear_problem:make_problem" and saved["num_params"] == 4
    assert len(saved["table"]) == 4
    # the best setting is what SweepResult.best_setting says for the same sweep
    p = problems.load("linear_problem:make_problem")
    result = jol.sweep(
        p.loss_fn,
        p.init_fn,
        lambda h: jol.sgd(h["learning_rate"]),
        {"learning_rate": [0.1, 0.01]},
        p.data,
        steps=40,
        seeds=2,
        eval_data=p.eval_data,
        progress=False,
    )
    best = result.best_setting()
    assert saved["best"]["learning_rate"] == best["learning_rate"] == 0.1
    assert saved["best"]["final_val_loss"] == pytest.approx(best["final_val_loss"], rel=1e-5)


def test_problem_file_path_and_a_mapping(linear):
    p = problems.load(f"{linear / 'linear_problem.py'}:as_dict")
    assert isinstance(p, problems.Problem) and p.eval_data is None and p.num_params() == 4


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module:make_problem", "no module named 'no_such_module'"),
        ("linear_problem:nope", "module 'linear_problem' has no function 'nope'"),
        ("linear_problem:NOT_A_FUNCTION", "is a int, not a function"),
        ("linear_problem:raises", "raised RuntimeError: the data folder is missing"),
        ("linear_problem:a_number", "returned int, not a jaxopt_lab.cli.Problem"),
        ("linear_problem:no_data", "returned a mapping without data"),
        ("linear_problem", "expected MODULE:FUNCTION"),
        ("missing.py:make_problem", "no file 'missing.py'"),
    ],
)
def test_a_bad_problem_gets_one_line_naming_what_is_missing(linear, spec, expected):
    code, out, err = _run(["sweep", "--problem", spec, "--steps", "5", "--no-progress"])
    assert code == 2 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxopt-lab sweep: error: argument --problem:")
    assert expected in lines[0], lines[0]


def test_problem_and_hidden_are_refused_together(linear):
    code, _, err = _run(["sweep", "--problem", "linear_problem:make_problem", "--hidden", "8"])
    assert code == 2 and "argument --hidden: only for the demo MLP" in err


def test_hessian_of_a_users_problem_trained_briefly(linear):
    argv = ["hessian", "--problem", "linear_problem:make_problem", "--steps", "30", "--k", "1"]
    code, out, err = _run([*argv, "--no-progress"])
    assert code == 0, err
    assert "lanczos, D = 4" in out and "advice: 2/lambda_max" in out
    # the Hessian of the mean squared error is 2/N X^T X whatever the parameters
    p = problems.load("linear_problem:make_problem")
    x = np.asarray(p.data[0], np.float64)
    top = np.linalg.eigvalsh(2 * x.T @ x / len(x))[-1]
    assert f"{top:.4g}" in out


# --- --checkpoint --------------------------------------------------------------------------


def _params(module):
    return jax.tree.leaves(nnx.state(module, nnx.Param))


def test_hessian_reads_jol_train_and_orbax_checkpoints(tmp_path):
    """The example problem (an NNX net with BatchNorm and Dropout) trained by jol.train
    with a checkpoint_dir, then analyzed from that folder and from an orbax save."""
    spec = f"{EXAMPLE}:make_problem"
    p = problems.load(spec)
    trained = jol.train(
        p.loss_fn,
        p.init_fn(jax.random.key(0)),
        jol.adam(0.01),
        p.data,
        steps=20,
        batch_size=32,
        key=jax.random.key(1),
        checkpoint_dir=tmp_path / "train",
        progress=False,
    )
    with ocp.StandardCheckpointer() as saver:
        saver.save(tmp_path / "orbax", nnx.state(trained.model, nnx.Param))
    want = _params(trained.model)
    for folder in ("train", "orbax"):
        loaded = problems.load_params(p, str(tmp_path / folder))
        for a, b in zip(_params(loaded), want, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    reports = []
    for folder in ("train", "orbax"):
        argv = ["hessian", "--problem", spec, "--checkpoint", str(tmp_path / folder), "--k", "1"]
        code, out, err = _run(argv)
        assert code == 0, err
        assert f"parameters from {tmp_path / folder}" in out
        reports.append(out[out.index("CurvatureReport") :])
    assert reports[0] == reports[1]  # the same parameters, the same report


def test_bad_checkpoints_are_refused_by_name(tmp_path, linear):
    spec = "linear_problem:make_problem"
    (tmp_path / "empty").mkdir()
    with ocp.StandardCheckpointer() as saver:  # parameters of another shape
        saver.save(tmp_path / "other", {"w": jnp.zeros(7)})
    cases = [
        (["--checkpoint", str(tmp_path / "nowhere")], "is not a folder"),
        (["--checkpoint", str(tmp_path / "empty")], "cannot read"),
        (["--checkpoint", str(tmp_path / "other")], "holds parameters of shapes [(7,)]"),
        (["--checkpoint", str(tmp_path / "other"), "--steps", "5"], "argument --steps"),
    ]
    for extra, expected in cases:
        code, out, err = _run(["hessian", "--problem", spec, *extra])
        assert code == 2 and not out, (extra, err)
        assert err.count("\n") == 1 and expected in err, (extra, err)


def test_the_demo_problem_is_built_as_a_users_is():
    p = problems.digits_mlp(16)
    assert isinstance(p, problems.Problem) and p.num_params() == 1210
    assert problems.digits_mlp(16) is p  # cached: the same functions, programs reused
    with pytest.raises(problems.ProblemError, match="give init_fn"):
        problems.Problem(loss_fn=p.loss_fn, data=p.data)
