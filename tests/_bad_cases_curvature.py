"""Bad input to the curvature and diagnostics functions, refused by name."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from _bad_cases import case

import jaxopt_lab as jol

C, D = jol.curvature, jol.diagnostics
X = np.linspace(-1.0, 1.0, 30, dtype=np.float32).reshape(10, 3)
DATA = (X, X.sum(1))
W = jnp.zeros(3)


def loss(w, b):
    return jnp.mean((b[0] @ w - b[1]) ** 2)


def vector(w, b):
    return b[0] @ w


def integer(w, b):
    return jnp.int32(1)


def pair(w, b):
    return loss(w, b), loss(w, b)


def square(p):
    return jnp.sum(p**2)


MATRIX_FREE = {
    "eigenvalues": C.eigenvalues,
    "power_iteration": C.power_iteration,
    "trace": C.trace,
    "density": C.density,
    "analyze": C.analyze,
    "hvp_operator": C.hvp_operator,
}

CASES = []
for name, fn in MATRIX_FREE.items():
    CASES += [
        case(
            f"{name} vector loss",
            lambda fn=fn: fn(vector, W, DATA),
            TypeError,
            "`loss_fn`",
            "(10,)",
        ),
        case(
            f"{name} integer loss",
            lambda fn=fn: fn(integer, W, DATA),
            TypeError,
            "`loss_fn`",
            "int32",
        ),
        case(f"{name} tuple loss", lambda fn=fn: fn(pair, W, DATA), TypeError, "`loss_fn`"),
        case(f"{name} empty params", lambda fn=fn: fn(loss, {}, DATA), ValueError, "`params`"),
        case(
            f"{name} bfloat16 params",
            lambda fn=fn: fn(loss, W.astype(jnp.bfloat16), DATA),
            TypeError,
            "`params`",
            "bfloat16",
        ),
        case(
            f"{name} integer params",
            lambda fn=fn: fn(loss, jnp.zeros(3, jnp.int32), DATA),
            TypeError,
            "`params`",
            "int32",
        ),
        case(
            f"{name} batch_size 0",
            lambda fn=fn: fn(loss, W, DATA, batch_size=0),
            ValueError,
            "`batch_size`",
        ),
        case(
            f"{name} data ragged",
            lambda fn=fn: fn(loss, W, (X, X[:4, 0])),
            ValueError,
            "`data`",
        ),
    ]
    if name != "hvp_operator":
        CASES.append(
            case(
                f"{name} key int",
                lambda fn=fn, extra={"num_nodes": 3} if name == "density" else {}: fn(
                    loss, W, DATA, key=3, **extra
                ),
                TypeError,
                "`key`",
            )
        )

CASES += [
    # dense
    case(
        "dense_hessian vector loss",
        lambda: C.dense_hessian(lambda w: w * w, jnp.ones(4)),
        TypeError,
        "`loss_fn`",
        "(4,)",
    ),
    case(
        "dense_hessian integer loss",
        lambda: C.dense_hessian(lambda w: jnp.int32(1), W),
        TypeError,
        "`loss_fn`",
    ),
    case("dense_hessian empty", lambda: C.dense_hessian(lambda p: 0.0, {}), ValueError, "`params`"),
    case(
        "dense_hessian int params",
        lambda: C.dense_hessian(square, jnp.ones(3, jnp.int32)),
        TypeError,
        "`params`",
    ),
    case(
        "dense_hessian max_bytes str",
        lambda: C.dense_hessian(square, W, max_bytes="a"),
        TypeError,
        "`max_bytes`",
    ),
    case(
        "dense_hessian max_bytes 0",
        lambda: C.dense_hessian(square, W, max_bytes=0),
        ValueError,
        "`max_bytes`",
    ),
    case(
        "dense_hessian above max_bytes",
        lambda: C.dense_hessian(square, jnp.ones(100), max_bytes=1000),
        ValueError,
        "`max_bytes`",
        "matrix-free",
    ),
    case(
        "hvp_operator batch_size str",
        lambda: C.hvp_operator(loss, W, DATA, batch_size="2"),
        TypeError,
        "`batch_size`",
    ),
    case(
        "hvp_operator batch_size float",
        lambda: C.hvp_operator(loss, W, DATA, batch_size=2.0),
        TypeError,
        "`batch_size`",
        "2.0",
    ),
    # eigenvalues and friends
    case(
        "eigenvalues v0 shape",
        lambda: C.eigenvalues(loss, W, DATA, v0=jnp.ones(4)),
        ValueError,
        "`v0`",
        "(4,)",
    ),
    case(
        "eigenvalues v0 structure",
        lambda: C.eigenvalues(loss, W, DATA, v0={"a": W}),
        ValueError,
        "`v0`",
    ),
    case(
        "eigenvalues k above D",
        lambda: C.eigenvalues(loss, W, DATA, k=10),
        ValueError,
        "`k`",
        "k <= 3",
    ),
    case(
        "eigenvalues k both above D/2",
        lambda: C.eigenvalues(loss, W, DATA, k=2, which="both"),
        ValueError,
        "`k`",
    ),
    case("eigenvalues k 0", lambda: C.eigenvalues(loss, W, DATA, k=0), ValueError, "`k`"),
    case("eigenvalues k str", lambda: C.eigenvalues(loss, W, DATA, k="2"), TypeError, "`k`"),
    case(
        "eigenvalues tol nan",
        lambda: C.eigenvalues(loss, W, DATA, tol=float("nan")),
        ValueError,
        "`tol`",
    ),
    case("eigenvalues tol str", lambda: C.eigenvalues(loss, W, DATA, tol="a"), TypeError, "`tol`"),
    case("eigenvalues tol 0", lambda: C.eigenvalues(loss, W, DATA, tol=0.0), ValueError, "`tol`"),
    case(
        "eigenvalues which",
        lambda: C.eigenvalues(loss, W, DATA, which="top"),
        ValueError,
        "`which`",
    ),
    case(
        "eigenvalues max_matvecs str",
        lambda: C.eigenvalues(loss, W, DATA, max_matvecs="a"),
        TypeError,
        "`max_matvecs`",
    ),
    case(
        "eigenvalues check_every 0",
        lambda: C.eigenvalues(loss, W, DATA, check_every=0),
        ValueError,
        "`check_every`",
    ),
    case(
        "eigenvalues params None", lambda: C.eigenvalues(loss, None, DATA), ValueError, "`params`"
    ),
    case(
        "power_iteration k above D",
        lambda: C.power_iteration(loss, W, DATA, k=5),
        ValueError,
        "`k`",
    ),
    case(
        "power_iteration tol 0",
        lambda: C.power_iteration(loss, W, DATA, tol=0.0),
        ValueError,
        "`tol`",
    ),
    case(
        "power_iteration k float",
        lambda: C.power_iteration(loss, W, DATA, k=1.0),
        TypeError,
        "`k`",
    ),
    case(
        "trace num_probes 1",
        lambda: C.trace(loss, W, DATA, num_probes=1),
        ValueError,
        "`num_probes`",
        "standard error",
    ),
    case(
        "power_iteration max_iters 0",
        lambda: C.power_iteration(loss, W, DATA, max_iters=0),
        ValueError,
        "`max_iters`",
    ),
    case(
        "trace num_probes 0",
        lambda: C.trace(loss, W, DATA, num_probes=0),
        ValueError,
        "`num_probes`",
    ),
    case(
        "density num_nodes 0",
        lambda: C.density(loss, W, DATA, num_nodes=0),
        ValueError,
        "`num_nodes`",
    ),
    case(
        "density num_nodes above D",
        lambda: C.density(loss, W, DATA, num_nodes=64),
        ValueError,
        "`num_nodes`",
    ),
    # analyze
    case(
        "analyze method", lambda: C.analyze(loss, W, DATA, method="exact"), ValueError, "`method`"
    ),
    case(
        "analyze k above D/2",
        lambda: C.analyze(loss, W, DATA, method="lanczos", k=5),
        ValueError,
        "`k`",
        "k <= 1",
    ),
    case("analyze k 0", lambda: C.analyze(loss, W, DATA, k=0), ValueError, "`k`"),
    case(
        "analyze learning_rate negative",
        lambda: C.analyze(loss, W, DATA, learning_rate=-1.0),
        ValueError,
        "`learning_rate`",
    ),
    case(
        "analyze learning_rate str",
        lambda: C.analyze(loss, W, DATA, learning_rate="a"),
        ValueError,
        "`learning_rate`",
    ),
    case(
        "analyze grad_tol nan",
        lambda: C.analyze(loss, W, DATA, grad_tol=float("nan")),
        ValueError,
        "`grad_tol`",
    ),
    case(
        "analyze eig_tol negative",
        lambda: C.analyze(loss, W, DATA, eig_tol=-1.0),
        ValueError,
        "`eig_tol`",
    ),
    case(
        "analyze max_dense 0",
        lambda: C.analyze(loss, W, DATA, max_dense=0),
        ValueError,
        "`max_dense`",
    ),
    case("analyze tol str", lambda: C.analyze(loss, W, DATA, tol="a"), TypeError, "`tol`"),
    case(
        "classify strings", lambda: C.classify("a", 1.0, 0.0, 1e-5, 1e-5), TypeError, "`grad_norm`"
    ),
    case(
        "classify grad_tol nan",
        lambda: C.classify(0.0, 1.0, 0.0, float("nan"), 1e-5),
        ValueError,
        "`grad_tol`",
    ),
    # sharpness
    case(
        "sharpness_callback every 0",
        lambda: C.sharpness_callback(loss, DATA, every=0),
        ValueError,
        "`every`",
    ),
    case(
        "sharpness_callback tol str",
        lambda: C.sharpness_callback(loss, DATA, every=1, tol="a"),
        TypeError,
        "`tol`",
    ),
    case(
        "sharpness_callback tol nan",
        lambda: C.sharpness_callback(loss, DATA, every=1, tol=float("nan")),
        ValueError,
        "`tol`",
    ),
    case(
        "sharpness_callback every float",
        lambda: C.sharpness_callback(loss, DATA, every=10.0),
        TypeError,
        "`every`",
    ),
    case(
        "sharpness_callback loss None",
        lambda: C.sharpness_callback(None, DATA, every=1),
        TypeError,
        "`loss_fn`",
    ),
    case(
        "sharpness_callback learning_rate negative",
        lambda: C.sharpness_callback(loss, DATA, every=1, learning_rate=-0.1),
        ValueError,
        "`learning_rate`",
    ),
    # diagnostics
    case(
        "check_grad vector f", lambda: D.check_grad(lambda p: p * 2, jnp.ones(3)), ValueError, "`f`"
    ),
    case(
        "check_grad num_directions 0",
        lambda: D.check_grad(square, jnp.ones(3), num_directions=0),
        ValueError,
        "`num_directions`",
    ),
    case(
        "check_grad eps negative",
        lambda: D.check_grad(square, jnp.ones(3), eps=-1.0),
        ValueError,
        "`eps`",
    ),
    case(
        "check_grad rtol 0",
        lambda: D.check_grad(square, jnp.ones(3), rtol=0.0),
        ValueError,
        "`rtol`",
    ),
    case(
        "check_grad rtol str",
        lambda: D.check_grad(square, jnp.ones(3), rtol="1e-2"),
        TypeError,
        "`rtol`",
    ),
    case(
        "check_grad max_coordinates -1",
        lambda: D.check_grad(square, jnp.ones(3), max_coordinates=-1),
        ValueError,
        "`max_coordinates`",
    ),
    case(
        "check_grad integer params",
        lambda: D.check_grad(square, jnp.ones(3, jnp.int32)),
        ValueError,
        "`params`",
    ),
    case(
        "check_grad empty params", lambda: D.check_grad(lambda p: 0.0, {}), ValueError, "`params`"
    ),
    case(
        "check_grad key int", lambda: D.check_grad(square, jnp.ones(3), key=3), TypeError, "`key`"
    ),
    case(
        "diagnose 2-D history",
        lambda: D.diagnose({"train_loss": np.ones((3, 10))}),
        ValueError,
        "`history['train_loss']`",
        "each run",
    ),
    case(
        "diagnose loss_floor nan",
        lambda: D.diagnose({"train_loss": np.ones(10)}, loss_floor=float("nan")),
        ValueError,
        "`loss_floor`",
    ),
    case(
        "diagnose learning_rate str",
        lambda: D.diagnose({"train_loss": np.ones(10)}, learning_rate="a"),
        ValueError,
        "`learning_rate`",
    ),
    case(
        "diagnose learning_rate 0",
        lambda: D.diagnose({"train_loss": np.ones(10)}, learning_rate=0.0),
        ValueError,
        "`learning_rate`",
    ),
    case("diagnose None", lambda: D.diagnose(None), TypeError, "`history`"),
    case(
        "diagnose no loss",
        lambda: D.diagnose({"val_loss": np.ones(3)}),
        ValueError,
        "`history`",
        "train_loss",
    ),
    case(
        "diagnose ragged",
        lambda: D.diagnose({"train_loss": np.ones(10), "grad_norm": np.ones(9)}),
        ValueError,
        "`history['grad_norm']`",
    ),
    case(
        "unit_health not a mapping",
        lambda: D.unit_health(jnp.ones((4, 3))),
        TypeError,
        "`activations`",
    ),
    case("unit_health empty", lambda: D.unit_health({}), TypeError, "`activations`"),
    case(
        "unit_health activation",
        lambda: D.unit_health({"h": jnp.ones((4, 3))}, activation="gelu2"),
        ValueError,
        "`activation`",
    ),
    case(
        "unit_health saturation 2",
        lambda: D.unit_health({"h": jnp.ones((4, 3))}, saturation=2.0),
        ValueError,
        "`saturation`",
    ),
    case(
        "unit_health saturation str",
        lambda: D.unit_health({"h": jnp.ones((4, 3))}, saturation="a"),
        ValueError,
        "`saturation`",
    ),
    case(
        "unit_health scalar layer",
        lambda: D.unit_health({"h": jnp.ones(())}),
        ValueError,
        "`activations['h']`",
    ),
    case(
        "symmetric_units rtol negative",
        lambda: D.symmetric_units([jnp.ones((3, 2)), jnp.ones((2, 1))], rtol=-1),
        ValueError,
        "`rtol`",
    ),
    case(
        "symmetric_units one layer",
        lambda: D.symmetric_units([jnp.ones((3, 2))]),
        ValueError,
        "`weights`",
    ),
    case(
        "symmetric_units 3-D kernel",
        lambda: D.symmetric_units([jnp.ones((3, 2, 1)), jnp.ones((2, 1))]),
        ValueError,
        "`weights[0]`",
    ),
]
