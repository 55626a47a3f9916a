"""Bad input to ``jol.train`` and ``jol.sweep``, refused by name before any training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _bad_cases import case

import jaxopt_lab as jol

X = np.linspace(-1.0, 1.0, 60, dtype=np.float32).reshape(20, 3)
DATA = {"x": X, "y": X.sum(1)}
PARAMS = {"w": jnp.zeros(3)}


def loss(p, b):
    return ((b["x"] @ p["w"] - b["y"]) ** 2).mean()


def train(**change):
    kwargs = {"steps": 4, "key": None, "progress": False, **change}
    fn = kwargs.pop("loss_fn", loss)
    params = kwargs.pop("params", PARAMS)
    optimizer = kwargs.pop("optimizer", optax.sgd(0.1))
    data = kwargs.pop("data", DATA)
    return lambda: jol.train(fn, params, optimizer, data, **kwargs)


def sweep(**change):
    kwargs = {"steps": 4, "progress": False, **change}
    fn = kwargs.pop("loss_fn", loss)
    init_fn = kwargs.pop("init_fn", lambda k: {"w": jax.random.normal(k, (3,))})
    make = kwargs.pop("make_optimizer", lambda h: optax.sgd(h["lr"]))
    grid = kwargs.pop("grid", {"lr": [0.1]})
    data = kwargs.pop("data", DATA)
    return lambda: jol.sweep(fn, init_fn, make, grid, data, **kwargs)


KEY = jax.random.key(0)
VECTOR = lambda p, b: b["x"] @ p["w"]
INTEGER = lambda p, b: jnp.int32(1)
COMPLEX = lambda p, b: p["w"].sum().astype(jnp.complex64) + 1j  # explicit: strict promotion
PAIR = lambda p, b: (loss(p, b), loss(p, b))

CASES = []
for name, run in (("train", train), ("sweep", sweep)):
    batches = {"key": KEY} if name == "train" else {}
    CASES += [
        case(f"{name} vector loss", run(loss_fn=VECTOR), TypeError, "`loss_fn`", "(20,)"),
        case(f"{name} integer loss", run(loss_fn=INTEGER), TypeError, "`loss_fn`", "int32"),
        case(f"{name} complex loss", run(loss_fn=COMPLEX), TypeError, "`loss_fn`", "complex"),
        case(f"{name} tuple loss", run(loss_fn=PAIR), TypeError, "`loss_fn`", "tuple"),
        case(f"{name} loss not callable", run(loss_fn=3), TypeError, "`loss_fn`"),
        case(
            f"{name} eval_data keys",
            run(eval_data={"a": X, "y": X[:, 0]}),
            ValueError,
            "`eval_data`",
            "`data`",
        ),
        case(
            f"{name} eval_data shapes",
            run(eval_data={"x": X[:, :2], "y": X[:, 0]}),
            ValueError,
            "`eval_data`['x']",
            "(2,)",
        ),
        case(f"{name} eval_data empty", run(eval_data={}), ValueError, "`eval_data`"),
        case(f"{name} data None", run(data=None), ValueError, "`data`"),
        case(f"{name} data scalars", run(data=[1.0, 2.0]), ValueError, "`data`"),
        case(f"{name} data ragged", run(data={"x": X, "y": X[:5, 0]}), ValueError, "`data`"),
        # a count of the wrong type is a TypeError, one out of range a ValueError
        case(f"{name} steps None", run(steps=None), TypeError, "`steps`"),
        case(f"{name} steps str", run(steps="4"), TypeError, "`steps`"),
        case(f"{name} steps float", run(steps=4.0), TypeError, "`steps`", "4.0"),
        case(f"{name} steps bool", run(steps=True), TypeError, "`steps`"),
        case(f"{name} steps 0", run(steps=0), ValueError, "`steps`"),
        case(f"{name} steps beyond int32", run(steps=10**12), ValueError, "`steps`", "int32"),
        case(f"{name} batch_size str", run(batch_size="4", **batches), TypeError, "`batch_size`"),
        case(
            f"{name} batch_size > data", run(batch_size=21, **batches), ValueError, "`batch_size`"
        ),
        case(f"{name} log_every str", run(log_every="2"), TypeError, "`log_every`"),
        case(f"{name} log_every not dividing", run(log_every=3), ValueError, "`log_every`"),
        case(f"{name} chunk_size 0", run(chunk_size=0), ValueError, "`chunk_size`"),
        case(f"{name} chunk_size float", run(chunk_size=2.0), TypeError, "`chunk_size`"),
        case(f"{name} monitor_size 0", run(monitor_size=0), ValueError, "`monitor_size`"),
        case(f"{name} monitor_size str", run(monitor_size="a"), TypeError, "`monitor_size`"),
        case(
            f"{name} divergence_factor str",
            run(divergence_factor="x"),
            TypeError,
            "`divergence_factor`",
        ),
        case(
            f"{name} divergence_factor nan",
            run(divergence_factor=float("nan")),
            ValueError,
            "`divergence_factor`",
        ),
        case(
            f"{name} divergence_factor negative",
            run(divergence_factor=-1.0),
            ValueError,
            "`divergence_factor`",
        ),
        case(f"{name} callbacks int", run(callbacks=3), TypeError, "`callbacks`"),
        case(f"{name} callbacks item", run(callbacks=[3]), TypeError, "`callbacks[0]`"),
        case(f"{name} checkpoint_dir int", run(checkpoint_dir=3), TypeError, "`checkpoint_dir`"),
    ]

CASES += [
    case("train params empty", train(params={}), ValueError, "`params`"),
    case("train params int", train(params={"w": jnp.zeros(3, jnp.int32)}), TypeError, "`params`"),
    case("train optimizer None", train(optimizer=None), TypeError, "`optimizer`"),
    case("train optimizer a function", train(optimizer=optax.sgd), TypeError, "`optimizer`"),
    case("train key int", train(key=3, batch_size=4), TypeError, "`key`"),
    case("train key float array", train(key=jnp.ones(2)), TypeError, "`key`"),
    case("train minibatches without key", train(batch_size=4), ValueError, "`key`"),
    case("train schedule int", train(schedule=3), TypeError, "`schedule`"),
    case(
        "train checkpoint_every 0",
        train(checkpoint_dir="/tmp/never", checkpoint_every=0),
        ValueError,
        "`checkpoint_every`",
    ),
    case(
        "train checkpoint_every float",
        train(checkpoint_dir="/tmp/never", checkpoint_every=10.0),
        TypeError,
        "`checkpoint_every`",
    ),
    case("train state empty", train(state={}), ValueError, "`state`"),
    case(
        "train state with a two-argument loss",
        train(state={"s": jnp.zeros(2)}),
        TypeError,
        "`loss_fn`",
        "loss_fn(params, state, batch, key)",
    ),
    case(
        "sweep make_optimizer float()",
        sweep(make_optimizer=lambda h: optax.sgd(float(h["lr"]))),
        TypeError,
        "`make_optimizer`",
        "traced",
    ),
    case(
        "sweep make_optimizer python if",
        sweep(make_optimizer=lambda h: optax.sgd(0.1) if h["lr"] > 0.05 else optax.adam(0.1)),
        TypeError,
        "`make_optimizer`",
        "traced",
    ),
    case(
        "sweep make_optimizer int()",
        sweep(make_optimizer=lambda h: optax.sgd(0.1 * int(h["lr"]))),
        TypeError,
        "`make_optimizer`",
        "traced",
    ),
    case(
        "sweep make_optimizer an optimizer",
        sweep(make_optimizer=optax.sgd(0.1)),
        TypeError,
        "`make_optimizer`",
    ),
    case(
        "sweep make_optimizer returns 3",
        sweep(make_optimizer=lambda h: 3),
        TypeError,
        "`make_optimizer(hparams)`",
    ),
    case(
        "sweep make_optimizer unknown key",
        sweep(make_optimizer=lambda h: optax.sgd(h["learning_rate"])),
        ValueError,
        "`make_optimizer`",
        "'learning_rate'",
    ),
    case("sweep grid None", sweep(grid=None), ValueError, "`grid`"),
    case("sweep grid strings", sweep(grid={"lr": ["a"]}), ValueError, "`grid['lr']`"),
    case("sweep grid nan", sweep(grid={"lr": [float("nan")]}), ValueError, "`grid['lr']`"),
    case("sweep grid inf", sweep(grid={"lr": [float("inf")]}), ValueError, "`grid['lr']`"),
    case("sweep grid 2-D", sweep(grid={"lr": [[0.1]]}), ValueError, "`grid['lr']`"),
    case("sweep grid unused key", sweep(grid={"lr": [0.1], "b": [1.0]}), ValueError, "`grid`"),
    case("sweep seeds -1", sweep(seeds=-1), ValueError, "`seeds`"),
    case("sweep seeds str", sweep(seeds="2"), ValueError, "`seeds`"),
    case("sweep seeds bool", sweep(seeds=True), ValueError, "`seeds`"),
    case("sweep seeds duplicates", sweep(seeds=[1, 1]), ValueError, "`seeds`"),
    case("sweep max_parallel str", sweep(max_parallel="a"), TypeError, "`max_parallel`"),
    case("sweep max_parallel 0", sweep(max_parallel=0), ValueError, "`max_parallel`"),
    case("sweep devices str", sweep(devices="cpu"), TypeError, "`devices`"),
    case("sweep devices empty", sweep(devices=[]), ValueError, "`devices`"),
    case("sweep init_fn not callable", sweep(init_fn=3), TypeError, "`init_fn`"),
    case(
        "sweep init_fn integer params",
        sweep(init_fn=lambda k: {"w": jnp.zeros(3, jnp.int32)}),
        TypeError,
        "`init_fn(key)`",
    ),
    case("sweep init_fn empty", sweep(init_fn=lambda k: {}), ValueError, "`init_fn(key)`"),
    case(
        "sweep has_state without a pair",
        sweep(has_state=True),
        TypeError,
        "`has_state=True`",
    ),
]
