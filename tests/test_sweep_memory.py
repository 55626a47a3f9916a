"""``max_parallel="auto"``: chunks sized by the compiled program's memory analysis."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol

DS = jol.datasets.digits()
GRID = {"learning_rate": list(np.geomspace(1e-3, 1, 8))}
KW = {"steps": 20, "seeds": 2, "batch_size": 32, "log_every": 5, "progress": False}


def init_fn(key):
    return {"w": 0.01 * jax.random.normal(key, (64, 10)), "b": jnp.zeros(10)}


def loss_fn(p, b):
    return optax.softmax_cross_entropy_with_integer_labels(b.x @ p["w"] + p["b"][None], b.y).mean()


def run(**kw):
    return jol.sweep(
        loss_fn, init_fn, lambda hp: optax.sgd(hp["learning_rate"]), GRID, DS.train, **KW, **kw
    )


@pytest.fixture(scope="module")
def unbounded():
    return run(max_parallel="auto")


def test_auto_without_budget_trains_every_run_at_once_when_it_fits(unbounded):
    plan = unbounded.memory_plan
    assert plan["max_parallel"] == 16  # 8 settings x 2 seeds, one device
    assert plan["bytes_one_run"] < plan["bytes_per_device"] <= plan["budget"]


@pytest.mark.parametrize("share", [0.05, 0.3, 0.6])
def test_auto_under_a_small_budget_chunks_and_stays_under_it(unbounded, share):
    one, all_runs = (
        unbounded.memory_plan["bytes_one_run"],
        unbounded.memory_plan["bytes_per_device"],
    )
    budget = int(one + share * (all_runs - one))
    result = run(max_parallel="auto", memory_budget=budget)
    plan = result.memory_plan
    assert plan["budget"] == budget
    assert plan["max_parallel"] in range(1, 16)  # chunked: fewer than the 16 runs at once
    assert plan["bytes_per_device"] <= budget  # what XLA says the chosen program needs
    # the same runs as an explicit max_parallel of that size, bit for bit
    explicit = run(max_parallel=plan["max_parallel"])
    for k, v in explicit.curves.items():
        np.testing.assert_array_equal(result.curves[k], v)
    # and nearly the same as all at once (float32 rounding across widths)
    np.testing.assert_allclose(
        result.curves["train_loss"], unbounded.curves["train_loss"], rtol=2e-5
    )


def test_auto_budgets_give_wider_chunks_as_they_grow(unbounded):
    one, all_runs = (
        unbounded.memory_plan["bytes_one_run"],
        unbounded.memory_plan["bytes_per_device"],
    )
    widths = [
        run(max_parallel="auto", memory_budget=int(one + s * (all_runs - one))).memory_plan[
            "max_parallel"
        ]
        for s in (0.0, 0.5, 1.0)
    ]
    assert widths[0] == 1 and widths == sorted(widths) and widths[-1] == 16


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"max_parallel": "auto", "memory_budget": 1000}, ValueError, "`memory_budget`: one run"),
        ({"max_parallel": 4, "memory_budget": 10**9}, ValueError, "max_parallel='auto' only"),
        ({"max_parallel": "fast"}, TypeError, "`max_parallel` must be"),
        ({"max_parallel": "auto", "memory_budget": 2.5e9}, TypeError, "`memory_budget`"),
        ({"keep_params": "no"}, TypeError, "`keep_params`"),
    ],
)
def test_bad_memory_arguments_are_named(kw, error, message):
    with pytest.raises(error, match=message):
        run(**kw)


def test_keep_params_false_keeps_curves_only(unbounded):
    result = run(max_parallel="auto", keep_params=False)
    assert result.params is None and result.state is None
    for k, v in unbounded.curves.items():
        np.testing.assert_array_equal(result.curves[k], v)
    assert result.table()["final_train_loss"].shape == (16,)
