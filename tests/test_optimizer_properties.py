"""Properties of every update rule, over hypothesis-drawn hyperparameters and inputs.

* valid hyperparameters and finite gradients give finite updates, in the parameters'
  dtype and shape (float32, bfloat16, float16), and finite parameters after a few steps;
  where the arithmetic runs in float32, a half-precision update is the float32 update
  rounded once (so float16 Adam neither overflows nor stalls);
* a hyperparameter outside its range (NaN and infinity included) is refused by name;
* integer and boolean parameters are refused at ``init``, naming the leaf.

Runs eagerly (op by op) on small shapes: each primitive compiles once per shape and
dtype, so the whole file stays within seconds.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxopt_lab as jol

SETTINGS = settings(max_examples=30, deadline=None)

LR = st.floats(0.0, 1.0)
UNIT = st.floats(0.0, 0.999)  # [0, 1)
EPS = st.floats(1e-8, 1.0)  # eps = 0 with a zero gradient is 0/0 by definition
SMALL = st.floats(0.0, 1.0)

# name -> (build(hyperparameters), strategies of the hyperparameters)
OPTIMIZERS = {
    "sgd": (lambda h: jol.sgd(h["lr"]), {"lr": LR}),
    "sgd-schedule": (
        lambda h: jol.sgd(jol.schedules.inverse_time(h["lr"], h["tau"])),
        {"lr": LR, "tau": st.floats(1e-3, 1e3)},
    ),
    "momentum": (
        lambda h: jol.momentum(h["lr"], h["beta"], form=h["form"]),
        {"lr": LR, "beta": UNIT, "form": st.sampled_from(["velocity", "ema", "accumulate"])},
    ),
    "nesterov": (lambda h: jol.nesterov(h["lr"], h["beta"]), {"lr": LR, "beta": UNIT}),
    "adagrad": (lambda h: jol.adagrad(h["lr"], h["eps"]), {"lr": LR, "eps": EPS}),
    "rmsprop": (
        lambda h: jol.rmsprop(
            h["lr"], h["decay"], h["eps"], eps_in_sqrt=h["in_sqrt"], momentum=h["momentum"]
        ),
        {
            "lr": LR,
            "decay": UNIT,
            "eps": EPS,
            "in_sqrt": st.booleans(),
            "momentum": st.none() | UNIT,
        },
    ),
    "adam": (
        lambda h: jol.adam(h["lr"], h["b1"], h["b2"], h["eps"], bias_correction=h["bc"]),
        st.builds(
            lambda lr, b2, frac, eps, bc: {
                "lr": lr,
                "b1": frac * b2**0.5,
                "b2": b2,
                "eps": eps,
                "bc": bc,
            },
            LR,
            UNIT,
            st.floats(0.0, 0.9),
            EPS,
            st.booleans(),
        ),  # b1 < sqrt(b2): Adam's steps are bounded (Kingma & Ba), or m / eps can be huge
    ),
    "adadelta": (
        lambda h: jol.adadelta(h["lr"], h["rho"], h["eps"]),
        {"lr": LR, "rho": UNIT, "eps": EPS},
    ),
    "delta_bar_delta": (
        lambda h: jol.delta_bar_delta(h["lr"], h["kappa"], h["phi"], h["gamma"]),
        {"lr": LR, "kappa": SMALL, "phi": UNIT, "gamma": UNIT},
    ),
    "sign_sgd": (lambda h: jol.sign_sgd(h["lr"]), {"lr": LR}),
    "normalized_sgd": (lambda h: jol.normalized_sgd(h["lr"], h["eps"]), {"lr": LR, "eps": EPS}),
    "adam-polyak": (
        lambda h: optax.chain(
            jol.adam(h["lr"]), jol.polyak_averaging(kind="ema", decay=h["decay"])
        ),
        {"lr": LR, "decay": UNIT},
    ),
}

DTYPES = st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float16])
# few distinct shapes (ranks 0 to 2): each primitive compiles once per shape and dtype
SHAPES = st.sampled_from([(), (3,), (2, 3)])
# |g| <= 1e3: squares overflow float16 (max 65504), a sum of three steps does not
GRAD = st.floats(-1e3, 1e3, width=32) | st.just(0.0)


@st.composite
def problems(draw):
    dtype = draw(DTYPES)
    shapes = draw(st.lists(SHAPES, min_size=1, max_size=2))
    params = {
        f"p{i}": jnp.asarray(draw(hnp.arrays(np.float32, s, elements=st.floats(-2, 2))), dtype)
        for i, s in enumerate(shapes)
    }
    grads = [
        jax.tree.map(
            lambda p: jnp.asarray(draw(hnp.arrays(np.float32, p.shape, elements=GRAD)), dtype),
            params,
        )
        for _ in range(3)
    ]
    return params, grads


# arithmetic in float32 and one rounding to the parameters' dtype at the end: a
# half-precision update is the float32 update rounded (momentum traces and
# delta-bar-delta's rates are kept in the parameters' dtype and round at every step)
ROUNDED_ONCE = {
    "sgd",
    "sgd-schedule",
    "sign_sgd",
    "normalized_sgd",
    "adagrad",
    "rmsprop",
    "adam",
    "adadelta",
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@SETTINGS
@given(data=st.data())
def test_valid_hyperparameters_give_finite_updates_in_the_parameters_dtype(name, data):
    build, strategies = OPTIMIZERS[name]
    if isinstance(strategies, dict):
        strategies = st.fixed_dictionaries(strategies)
    hparams = data.draw(strategies, label="hyperparameters")
    params, grads = data.draw(problems(), label="problem")
    dtype = jax.tree.leaves(params)[0].dtype
    compare = dtype != jnp.float32 and name in ROUNDED_ONCE and hparams.get("momentum") is None
    tx = build(hparams)
    state = tx.init(params)
    if compare:
        ref_params = jax.tree.map(lambda p: p.astype(jnp.float32), params)
        ref_state = tx.init(ref_params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert u.dtype == p.dtype and u.shape == p.shape, (u.dtype, u.shape, p.shape)
            assert np.isfinite(np.asarray(u, np.float32)).all(), (name, hparams, u)
        params = optax.apply_updates(params, updates)
        if compare:  # the same gradients in float32
            g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g)
            ref, ref_state = tx.update(g32, ref_state, ref_params)
            ref_params = optax.apply_updates(ref_params, ref)
            finfo = jnp.finfo(dtype)
            for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(ref), strict=True):
                np.testing.assert_allclose(
                    np.asarray(u, np.float32),
                    np.asarray(r),
                    rtol=float(finfo.eps),  # within one ulp of the rounded float32 value
                    # float16 subnormals; float32 ones may be flushed to zero
                    atol=2 * float(finfo.smallest_subnormal) + 2 * float(jnp.finfo("float32").tiny),
                    err_msg=f"{name} {hparams}",
                )
    for p in jax.tree.leaves(params):
        assert np.isfinite(np.asarray(p, np.float32)).all()


# (label, build(value), argument, range); the range's complement is drawn
ARGUMENTS = [
    ("sgd", lambda v: jol.sgd(v), "learning_rate", "lr"),
    ("adam", lambda v: jol.adam(v), "learning_rate", "lr"),
    ("momentum", lambda v: jol.momentum(0.1, v), "beta", "unit"),
    ("nesterov", lambda v: jol.nesterov(0.1, v), "beta", "unit"),
    ("adagrad", lambda v: jol.adagrad(0.1, v), "eps", "nonneg"),
    ("rmsprop", lambda v: jol.rmsprop(0.1, v), "decay", "unit"),
    ("rmsprop", lambda v: jol.rmsprop(0.1, eps=v), "eps", "nonneg"),
    ("rmsprop", lambda v: jol.rmsprop(0.1, momentum=v), "momentum", "unit"),
    ("adam", lambda v: jol.adam(0.1, b1=v), "b1", "unit"),
    ("adam", lambda v: jol.adam(0.1, b2=v), "b2", "unit"),
    ("adam", lambda v: jol.adam(0.1, eps=v), "eps", "nonneg"),
    ("adadelta", lambda v: jol.adadelta(rho=v), "rho", "unit"),
    ("adadelta", lambda v: jol.adadelta(eps=v), "eps", "nonneg"),
    ("delta_bar_delta", lambda v: jol.delta_bar_delta(0.1, v, 0.1, 0.5), "kappa", "nonneg"),
    ("delta_bar_delta", lambda v: jol.delta_bar_delta(0.1, 0.1, v, 0.5), "phi", "unit"),
    ("delta_bar_delta", lambda v: jol.delta_bar_delta(0.1, 0.1, 0.1, v), "gamma", "unit"),
    ("normalized_sgd", lambda v: jol.normalized_sgd(0.1, v), "eps", "nonneg"),
    ("newton", lambda v: jol.newton(damping=v), "damping", "nonneg"),
    ("polyak_averaging", lambda v: jol.polyak_averaging(kind="ema", decay=v), "decay", "unit"),
    ("inverse_time", lambda v: jol.schedules.inverse_time(0.1, v), "tau", "pos"),
]
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])
NEGATIVE = st.floats(-1e30, -1e-30)  # within float32, and not flushed to -0.0
INVALID = {
    "lr": NEGATIVE | NON_FINITE,
    "nonneg": NEGATIVE | NON_FINITE,
    "pos": NEGATIVE | st.just(0.0) | NON_FINITE,
    "unit": NEGATIVE | st.floats(1.0, 1e30) | NON_FINITE,
}
WRONG_TYPES = [None, True, False, "0.1", [0.1], (0.1,)]
NONE_IS_MEANINGFUL = {"rmsprop-momentum", "polyak_averaging-decay"}


@pytest.mark.parametrize(("label", "build", "name", "kind"), ARGUMENTS)
@SETTINGS
@given(data=st.data())
def test_invalid_hyperparameters_are_refused_by_name(label, build, name, kind, data):
    value = data.draw(INVALID[kind], label=name)
    if data.draw(st.booleans(), label="as a 0-d array"):
        value = np.float32(value) if data.draw(st.booleans()) else jnp.asarray(value)
    with pytest.raises(ValueError, match=f"`{name}`"):
        build(value)
    with pytest.raises(TypeError, match=f"`{name}`"):
        wrong = [
            v for v in WRONG_TYPES if v is not None or f"{label}-{name}" not in NONE_IS_MEANINGFUL
        ]
        build(data.draw(st.sampled_from(wrong), label="wrong type"))


_TYPICAL = {
    "lr": 0.1,
    "tau": 10.0,
    "beta": 0.9,
    "form": "velocity",
    "eps": 1e-6,
    "decay": 0.9,
    "in_sqrt": True,
    "momentum": None,
    "b1": 0.9,
    "b2": 0.999,
    "bc": True,
    "rho": 0.95,
    "kappa": 0.01,
    "phi": 0.1,
    "gamma": 0.5,
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@SETTINGS
@given(
    dtype=st.sampled_from([np.int8, np.int16, np.int32, np.uint8, np.uint32, np.bool_]),
    shape=SHAPES,
)
def test_integer_parameters_are_refused_at_init(name, dtype, shape):
    build, _ = OPTIMIZERS[name]
    tx = build(_TYPICAL)
    params = {"ok": jnp.zeros(2), "bad": np.zeros(shape, dtype)}
    with pytest.raises(TypeError, match=r"`params`\['bad'\]") as info:
        tx.init(params)
    assert str(np.dtype(dtype)) in str(info.value) and "float32" in str(info.value)
