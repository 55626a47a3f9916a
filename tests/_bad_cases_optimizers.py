"""Bad input to the update rules, refused by name: hyperparameters at construction,
parameters at ``init`` and gradients at ``update``.

* every hyperparameter of every public optimizer, building block and schedule, given
  ``None``, a list, a bool or a string (``TypeError``), and a value outside its range,
  NaN or infinity (``ValueError``);
* static switches given something other than a bool, schedules where none is allowed,
  non-scalar arrays;
* integer, boolean and complex parameters at ``init`` (``TypeError`` naming the leaf);
* gradients whose tree structure or leaf shapes differ from the parameters'.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from _bad_cases import case

import jaxopt_lab as jol

INF, NAN = float("inf"), float("nan")
SCHEDULE = jol.schedules.inverse_time(0.1, 10.0)

# (label, factory, the other arguments, argument, its range)
#   "lr": finite >= 0 (or a schedule); "unit": [0, 1); "nonneg": finite >= 0;
#   "pos": finite > 0
HYPERPARAMETERS = [
    ("sgd", jol.sgd, {}, "learning_rate", "lr"),
    ("momentum", jol.momentum, {"learning_rate": 0.1}, "beta", "unit"),
    ("momentum", jol.momentum, {}, "learning_rate", "lr"),
    ("nesterov", jol.nesterov, {"learning_rate": 0.1}, "beta", "unit"),
    ("adagrad", jol.adagrad, {"learning_rate": 0.1}, "eps", "nonneg"),
    ("rmsprop", jol.rmsprop, {"learning_rate": 0.1}, "decay", "unit"),
    ("rmsprop", jol.rmsprop, {"learning_rate": 0.1}, "eps", "nonneg"),
    ("rmsprop", jol.rmsprop, {"learning_rate": 0.1}, "momentum", "unit"),
    ("adam", jol.adam, {}, "learning_rate", "lr"),
    ("adam", jol.adam, {"learning_rate": 0.1}, "b1", "unit"),
    ("adam", jol.adam, {"learning_rate": 0.1}, "b2", "unit"),
    ("adam", jol.adam, {"learning_rate": 0.1}, "eps", "nonneg"),
    ("adadelta", jol.adadelta, {}, "rho", "unit"),
    ("adadelta", jol.adadelta, {}, "eps", "nonneg"),
    (
        "delta_bar_delta",
        jol.delta_bar_delta,
        {"kappa": 0.1, "phi": 0.1, "gamma": 0.5},
        "learning_rate",
        "lr",
    ),
    (
        "delta_bar_delta",
        jol.delta_bar_delta,
        {"learning_rate": 0.1, "phi": 0.1, "gamma": 0.5},
        "kappa",
        "nonneg",
    ),
    (
        "delta_bar_delta",
        jol.delta_bar_delta,
        {"learning_rate": 0.1, "kappa": 0.1, "gamma": 0.5},
        "phi",
        "unit",
    ),
    (
        "delta_bar_delta",
        jol.delta_bar_delta,
        {"learning_rate": 0.1, "kappa": 0.1, "phi": 0.1},
        "gamma",
        "unit",
    ),
    ("sign_sgd", jol.sign_sgd, {}, "learning_rate", "lr"),
    ("normalized_sgd", jol.normalized_sgd, {"learning_rate": 0.1}, "eps", "nonneg"),
    ("newton", jol.newton, {}, "damping", "nonneg"),
    ("newton", jol.newton, {}, "learning_rate", "lr"),
    ("polyak_averaging", jol.polyak_averaging, {"kind": "ema"}, "decay", "unit"),
    (
        "linear_decay",
        jol.schedules.linear_decay,
        {"end_value": 0.0, "transition_steps": 10},
        "init_value",
        "lr",
    ),
    (
        "linear_decay",
        jol.schedules.linear_decay,
        {"init_value": 0.1, "transition_steps": 10},
        "end_value",
        "lr",
    ),
    (
        "linear_decay",
        jol.schedules.linear_decay,
        {"init_value": 0.1, "end_value": 0.0},
        "transition_steps",
        "pos",
    ),
    ("exponential_decay", jol.schedules.exponential_decay, {"init_value": 0.1}, "tau", "pos"),
    ("inverse_time", jol.schedules.inverse_time, {"tau": 10.0}, "init_value", "lr"),
    ("scale_by_learning_rate", jol.scale_by_learning_rate, {}, "learning_rate", "lr"),
    ("scale_by_trace", jol.scale_by_trace, {}, "beta", "unit"),
    ("scale_by_ema", jol.scale_by_ema, {}, "beta", "unit"),
    ("scale_by_adagrad", jol.scale_by_adagrad, {}, "eps", "nonneg"),
    ("scale_by_rms", jol.scale_by_rms, {}, "decay", "unit"),
    ("scale_by_adam", jol.scale_by_adam, {}, "b2", "unit"),
    ("scale_by_adadelta", jol.scale_by_adadelta, {}, "rho", "unit"),
    ("scale_by_global_norm", jol.scale_by_global_norm, {}, "eps", "nonneg"),
    ("scale_by_newton", jol.scale_by_newton, {}, "damping", "nonneg"),
    (
        "scale_by_delta_bar_delta",
        jol.scale_by_delta_bar_delta,
        {"learning_rate": 0.1, "kappa": 0.1, "phi": 0.1},
        "gamma",
        "unit",
    ),
]

# every argument gets the four wrong types; each range its out-of-range values
WRONG_TYPES = [
    ("None", None, "NoneType"),
    ("list", [0.1], "list"),
    ("bool", True, "bool"),
    ("str", "0.1", "str"),
]
OUT_OF_RANGE = {
    "lr": [("negative", -0.1), ("inf", INF), ("nan", NAN)],
    "unit": [("negative", -0.1), ("one", 1.0), ("inf", INF), ("nan", NAN)],
    "nonneg": [("negative", -1.0), ("inf", INF), ("nan", NAN)],
    "pos": [("zero", 0), ("negative", -1.0), ("inf", INF), ("nan", NAN)],
}
# the full cross product for the named optimizers; the building blocks and schedules
# get one wrong type and every out-of-range value
ALL_TYPES = {
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adadelta",
    "delta_bar_delta",
    "sign_sgd",
    "normalized_sgd",
    "newton",
    "polyak_averaging",
}

# None means "no momentum" for rmsprop; polyak's ema without decay has a case below
NONE_IS_MEANINGFUL = {("rmsprop", "momentum"), ("polyak_averaging", "decay")}


def _build(factory, others, name, value):
    return lambda: factory(**others, **{name: value})


CASES = []
for label, factory, others, name, kind in HYPERPARAMETERS:
    types = WRONG_TYPES if label in ALL_TYPES else WRONG_TYPES[:1]
    for what, value, type_name in types:
        if value is None and (label, name) in NONE_IS_MEANINGFUL:
            continue
        CASES.append(
            case(
                f"{label}-{name}-{what}",
                _build(factory, others, name, value),
                TypeError,
                f"`{name}`",
                type_name,
            )
        )
    for what, value in OUT_OF_RANGE[kind]:
        CASES.append(
            case(
                f"{label}-{name}-{what}",
                _build(factory, others, name, value),
                ValueError,
                f"`{name}`",
                repr(value),
            )
        )

# concrete arrays and other shapes of a hyperparameter
CASES += [
    case(
        "adam-learning_rate-vector",
        lambda: jol.adam(jnp.array([0.1, 0.2])),
        ValueError,
        "`learning_rate`",
        "shape (2,)",
    ),
    case(
        "momentum-beta-numpy-vector",
        lambda: jol.momentum(0.1, np.array([0.9])),
        ValueError,
        "`beta`",
        "shape (1,)",
    ),
    case("adam-eps-bool-array", lambda: jol.adam(0.1, eps=jnp.array(True)), TypeError, "`eps`"),
    case("adam-b1-numpy-bool", lambda: jol.adam(0.1, b1=np.bool_(False)), TypeError, "`b1`"),
    case("sgd-learning_rate-complex", lambda: jol.sgd(0.1 + 0j), TypeError, "`learning_rate`"),
    case("sgd-learning_rate-tuple", lambda: jol.sgd((0.1,)), TypeError, "`learning_rate`", "tuple"),
    case(
        "adam-learning_rate-dict",
        lambda: jol.adam({"lr": 0.1}),
        TypeError,
        "`learning_rate`",
        "dict",
    ),
    case("adam-b1-schedule", lambda: jol.adam(0.1, b1=SCHEDULE), TypeError, "`b1`", "schedule"),
    case(
        "momentum-beta-schedule-out-of-range",
        lambda: jol.momentum(0.1, beta=lambda k: 1.5),  # a schedule is fine; this one is not
        ValueError,
        "`beta`",
        "schedule",
    ),
    case(
        "delta_bar_delta-learning_rate-schedule",
        lambda: jol.delta_bar_delta(SCHEDULE, 0.1, 0.1, 0.5),
        TypeError,
        "`learning_rate`",
    ),
    case(
        "sgd-schedule-returns-None",
        lambda: jol.sgd(lambda k: None),
        TypeError,
        "`learning_rate`",
        "step 0",
    ),
    case(
        "sgd-schedule-negative",
        lambda: jol.sgd(lambda k: -0.1),
        ValueError,
        "`learning_rate`",
        "step 0",
    ),
    case(
        "sgd-schedule-nan",
        lambda: jol.sgd(lambda k: jnp.float32(NAN)),
        ValueError,
        "`learning_rate`",
        "nan",
    ),
    case(
        "adam-schedule-vector",
        lambda: jol.adam(lambda k: jnp.ones(3)),
        ValueError,
        "`learning_rate`",
        "shape (3,)",
    ),
]

# static switches and choices
CASES += [
    case(
        "adam-bias_correction-str",
        lambda: jol.adam(0.1, bias_correction="no"),
        TypeError,
        "`bias_correction`",
        "'no'",
    ),
    case(
        "adam-bias_correction-None",
        lambda: jol.adam(0.1, bias_correction=None),
        TypeError,
        "`bias_correction`",
    ),
    case(
        "rmsprop-eps_in_sqrt-int",
        lambda: jol.rmsprop(0.1, eps_in_sqrt=0),
        TypeError,
        "`eps_in_sqrt`",
    ),
    case(
        "scale_by_trace-nesterov-str",
        lambda: jol.scale_by_trace(0.9, nesterov="yes"),
        TypeError,
        "`nesterov`",
    ),
    case(
        "scale_by_learning_rate-flip_sign-None",
        lambda: jol.scale_by_learning_rate(0.1, flip_sign=None),
        TypeError,
        "`flip_sign`",
    ),
    case(
        "newton-saddle_free-str", lambda: jol.newton(saddle_free="yes"), TypeError, "`saddle_free`"
    ),
    case("newton-method-unknown", lambda: jol.newton(method="lu"), ValueError, "`method`", "'lu'"),
    case("newton-method-None", lambda: jol.newton(method=None), ValueError, "`method`"),
    case("newton-max_dense-zero", lambda: jol.newton(max_dense=0), ValueError, "`max_dense`"),
    case("newton-max_dense-float", lambda: jol.newton(max_dense=10.5), TypeError, "`max_dense`"),
    case("newton-cg_maxiter-None", lambda: jol.newton(cg_maxiter=None), TypeError, "`cg_maxiter`"),
    case(
        "newton-krylov_depth-bool",
        lambda: jol.newton(krylov_depth=True),
        TypeError,
        "`krylov_depth`",
    ),
    case("newton-cg_tol-None", lambda: jol.newton(cg_tol=None), TypeError, "`cg_tol`"),
    case("newton-cg_tol-negative", lambda: jol.newton(cg_tol=-1e-5), ValueError, "`cg_tol`"),
    case(
        "momentum-form-unknown",
        lambda: jol.momentum(0.1, form="heavy"),
        ValueError,
        "`form`",
        "'heavy'",
    ),
    case(
        "polyak_averaging-kind-unknown",
        lambda: jol.polyak_averaging(kind="median"),
        ValueError,
        "`kind`",
    ),
    case(
        "polyak_averaging-ema-without-decay",
        lambda: jol.polyak_averaging(kind="ema"),
        ValueError,
        "`decay`",
    ),
    case(
        "polyak_averaging-uniform-with-decay",
        lambda: jol.polyak_averaging(kind="uniform", decay=0.9),
        ValueError,
        "`decay`",
    ),
]

# parameters that are not floating point, at init
OPTIMIZERS = {
    "sgd": lambda: jol.sgd(0.1),
    "momentum": lambda: jol.momentum(0.1, 0.9),
    "momentum-ema": lambda: jol.momentum(0.1, 0.9, form="ema"),
    "nesterov": lambda: jol.nesterov(0.1, 0.9),
    "adagrad": lambda: jol.adagrad(0.1),
    "rmsprop": lambda: jol.rmsprop(0.1),
    "rmsprop-momentum": lambda: jol.rmsprop(0.1, momentum=0.9),
    "adam": lambda: jol.adam(0.1),
    "adadelta": lambda: jol.adadelta(),
    "delta_bar_delta": lambda: jol.delta_bar_delta(0.1, 0.01, 0.1, 0.5),
    "sign_sgd": lambda: jol.sign_sgd(0.1),
    "normalized_sgd": lambda: jol.normalized_sgd(0.1),
    "newton": lambda: jol.newton(),
    "polyak": lambda: optax.chain(jol.sgd(0.1), jol.polyak_averaging()),
    "scale_by_adam": lambda: jol.scale_by_adam(),
    "sgd-schedule": lambda: jol.sgd(SCHEDULE),
}
INT_PARAMS = {"b": jnp.zeros(2), "w": jnp.array([1, 2, 3], jnp.int32)}


def _init(make, params):
    return lambda: make().init(params)


CASES += [
    case(
        f"{name}-int32-params",
        _init(make, INT_PARAMS),
        TypeError,
        "`params`['w']",
        "int32",
        "float32",
    )
    for name, make in OPTIMIZERS.items()
]
CASES += [
    case(
        "adam-bool-params",
        _init(OPTIMIZERS["adam"], {"m": jnp.array([True])}),
        TypeError,
        "`params`['m']",
        "bool",
    ),
    case(
        "sgd-complex-params",
        _init(OPTIMIZERS["sgd"], [jnp.ones(2, jnp.complex64)]),
        TypeError,
        "`params`[0]",
        "complex64",
    ),
    case(
        "momentum-python-int-param",
        _init(OPTIMIZERS["momentum"], {"n": 3}),
        TypeError,
        "`params`['n']",
        "int32",
    ),
    case(
        "rmsprop-uint8-nested",
        _init(OPTIMIZERS["rmsprop"], {"a": {"u": np.ones(2, np.uint8)}}),
        TypeError,
        "`params`['a']['u']",
        "uint8",
    ),
]

# gradients whose structure or leaf shapes differ from the parameters'
PARAMS = {"b": jnp.zeros(()), "w": jnp.ones(3)}
MISSING = {"w": jnp.ones(3)}
EXTRA = {"b": jnp.zeros(()), "c": jnp.zeros(()), "w": jnp.ones(3)}
SHORT = {"b": jnp.zeros(()), "w": jnp.ones(1)}


def _update(make, grads, *, with_params, **extra_args):
    def call():
        tx = make()
        state = tx.init(PARAMS)
        return tx.update(grads, state, PARAMS if with_params else None, **extra_args)

    return call


STATEFUL = [
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adadelta",
    "delta_bar_delta",
    "polyak",
    "scale_by_adam",
    "momentum-ema",
]
for name in STATEFUL:
    with_params = name == "polyak"  # it needs params; the others check their state
    make = OPTIMIZERS[name]
    CASES += [
        case(
            f"{name}-grads-missing-leaf",
            _update(make, MISSING, with_params=with_params),
            ValueError,
            "`updates`",
            "['b']",
        ),
        case(
            f"{name}-grads-leaf-shape",
            _update(make, SHORT, with_params=with_params),
            ValueError,
            "`updates`['w']",
            "(1,)",
            "(3,)",
        ),
    ]
for name in ("sgd", "sign_sgd", "normalized_sgd", "sgd-schedule"):  # stateless: via params
    make = OPTIMIZERS[name]
    CASES += [
        case(
            f"{name}-grads-extra-leaf",
            _update(make, EXTRA, with_params=True),
            ValueError,
            "`updates`",
            "['c']",
        ),
        case(
            f"{name}-grads-leaf-shape",
            _update(make, SHORT, with_params=True),
            ValueError,
            "`updates`['w']",
            "(1,)",
            "(3,)",
        ),
    ]
CASES += [
    case(
        "adam-grads-list-for-dict",
        _update(OPTIMIZERS["adam"], [jnp.zeros(()), jnp.ones(3)], with_params=False),
        ValueError,
        "`updates`",
        "['w']",
        "[1]",
    ),
    case(
        "newton-grads-leaf-shape",
        _update(
            OPTIMIZERS["newton"], SHORT, with_params=True, value_fn=lambda p: jnp.sum(p["w"] ** 2)
        ),
        ValueError,
        "`updates`['w']",
        "(1,)",
        "(3,)",
    ),
    case(
        "adam-params-int-at-update",
        lambda: jol.adam(0.1).update(
            PARAMS, jol.adam(0.1).init(PARAMS), {"b": jnp.zeros((), jnp.int32), "w": jnp.ones(3)}
        ),
        TypeError,
        "`params`['b']",
        "int32",
    ),
]
