"""The problem suite: small problems a laptop CPU trains in seconds, each a :class:`Problem`.

Each function is cached per argument: the same function objects come back, so compiled
programs are reused between a search, the reruns and a curvature analysis.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxopt_lab.datasets import NUM_CLASSES, NUM_FEATURES, digits
from jaxopt_lab.problems._problem import Problem


@functools.cache
def quadratic_noisy(
    dim: int = 20, condition: float = 100.0, noise: float = 1.0, examples: int = 1024
) -> Problem:
    r"""An ill-conditioned quadratic whose linear term carries injected noise.

    Lecture 001 (LeCun with Defazio, NYU) shows SGD on a quadratic "with STD 1.0 noise
    injected into b": here :math:`f(w) = \tfrac12 w^\top A w - b^\top w - f^*` with
    :math:`A` diagonal, eigenvalues log-spaced from 1 to ``condition``, and each training
    example a noisy copy :math:`b_i = b + \varepsilon_i`, :math:`\varepsilon_i \sim
    \mathcal N(0, \text{noise}^2 I)`; a minibatch's loss uses the mean of its
    :math:`b_i`, so its gradient :math:`A w - \bar b` is unbiased with variance
    :math:`\text{noise}^2 / S` per coordinate. The validation loss is the noiseless
    :math:`f(w) - f^* \ge 0` (``eval_data`` holds :math:`b` itself). Constant-rate SGD
    stalls at a noise floor that grows with the rate; iterate averaging or a decaying rate
    lowers it (momentum does only at the same effective step, rate / (1 - beta)).

    Example:
      >>> p = jol.problems.quadratic_noisy()
      >>> p.num_params(), p.target
      (20, 0.05)
    """
    eigenvalues = jnp.asarray(np.geomspace(1.0, condition, dim), jnp.float32)
    b = jnp.asarray(np.random.default_rng(0).normal(size=dim), jnp.float32) * eigenvalues
    noisy = b[None, :] + noise * jax.random.normal(jax.random.key(0), (examples, dim))
    optimum = 0.5 * jnp.sum(b**2 / eigenvalues)  # -f at w* = b / eigenvalues

    def loss_fn(params: Any, batch: jax.Array) -> jax.Array:
        w = params["w"]
        return 0.5 * jnp.sum(eigenvalues * w**2) - jnp.mean(batch, axis=0) @ w + optimum

    def init_fn(key: jax.Array) -> Any:
        return {"w": jax.random.normal(key, (dim,))}

    return Problem(
        loss_fn=loss_fn,
        init_fn=init_fn,
        data=noisy,
        eval_data=b[None, :],
        name="quadratic_noisy",
        target=0.05,
        steps=200,
        batch_size=8,
        description=(
            f"ill-conditioned quadratic (d={dim}, condition number {condition:g}) with "
            f"N(0, {noise:g}^2) noise injected into its linear term (lecture 001)"
        ),
    )


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@functools.cache
def logistic() -> Problem:
    """Multinomial logistic regression (64 pixels -> 10 logits) on the bundled digits.

    Convex: every optimizer that converges reaches the same minimum of the training
    loss; the comparison is about speed.
    """

    def init_fn(key: jax.Array) -> Any:
        return {
            "w": 0.01 * jax.random.normal(key, (NUM_FEATURES, NUM_CLASSES)),
            "b": jnp.zeros(NUM_CLASSES),
        }

    def loss_fn(params: Any, batch: Any) -> jax.Array:
        return _cross_entropy(batch.x @ params["w"] + params["b"][None, :], batch.y)

    def accuracy_fn(params: Any, batch: Any) -> jax.Array:
        return jnp.mean(jnp.argmax(batch.x @ params["w"] + params["b"][None, :], -1) == batch.y)

    ds = digits()
    return Problem(
        loss_fn=loss_fn,
        init_fn=init_fn,
        data=ds.train,
        eval_data=ds.validation,
        name="logistic",
        accuracy_fn=accuracy_fn,
        target=0.25,
        steps=300,
        batch_size=32,
        description="multinomial logistic regression on the bundled 8x8 digits (convex)",
    )


class MLP(nnx.Module):
    """64 pixels -> ``hidden`` tanh units -> 10 logits."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(NUM_FEATURES, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


@functools.cache
def digits_mlp(hidden: int = 32) -> Problem:
    """:class:`MLP` on the bundled digits, as a pure function of its ``nnx.State``.

    The demo's problem. The module is split once into a static graph and the state, so
    the parameters are a plain pytree.

    Example:
      >>> jol.problems.digits_mlp(16).num_params()
      1210
    """
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: MLP(hidden, rngs=nnx.Rngs(0))))

    def init_fn(key: jax.Array) -> Any:
        return nnx.split(MLP(hidden, rngs=nnx.Rngs(params=key)))[1]

    def logits(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    def loss_fn(state: Any, batch: Any) -> jax.Array:
        return _cross_entropy(logits(state, batch.x), batch.y)

    def accuracy_fn(state: Any, batch: Any) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(state, batch.x), axis=-1) == batch.y)

    ds = digits()
    return Problem(
        loss_fn=loss_fn,
        init_fn=init_fn,
        data=ds.train,
        eval_data=ds.validation,
        name=f"digits MLP 64-{hidden}-10",
        accuracy_fn=accuracy_fn,
        target=0.15,
        steps=300,
        batch_size=32,
        description=f"a 64-{hidden}-10 tanh MLP (Flax NNX) on the bundled 8x8 digits",
    )


class CNN(nnx.Module):
    """Conv(3x3, ``channels``) -> BatchNorm -> relu -> Dropout -> Linear, on 8x8 images."""

    def __init__(self, channels: int = 4, dropout: float = 0.2, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, channels, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(channels, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(channels * 64, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = nnx.relu(self.bn(self.conv(x.reshape(-1, 8, 8, 1))))
        return self.out(self.drop(h).reshape(x.shape[0], -1))


@functools.cache
def cnn(channels: int = 4) -> Problem:
    """:class:`CNN` (an NNX module with BatchNorm and Dropout) on the bundled digits.

    Trained as a module: the engine carries BatchNorm's statistics and Dropout's RNG
    stream, and evaluates in evaluation mode (running averages, no dropout).
    """

    def init_fn(key: jax.Array) -> CNN:
        return CNN(channels, rngs=nnx.Rngs(key))

    def loss_fn(model: CNN, batch: Any) -> jax.Array:
        return _cross_entropy(model(batch.x), batch.y)

    def accuracy_fn(model: CNN, batch: Any) -> jax.Array:
        return jnp.mean(jnp.argmax(model(batch.x), axis=-1) == batch.y)

    ds = digits()
    return Problem(
        loss_fn=loss_fn,
        init_fn=init_fn,
        data=ds.train,
        eval_data=ds.validation,
        name="cnn",
        accuracy_fn=accuracy_fn,
        target=0.2,
        steps=200,
        batch_size=32,
        description=(
            f"a conv({channels}) - BatchNorm - relu - Dropout - linear CNN (Flax NNX) on "
            "the bundled 8x8 digits"
        ),
    )


#: the suite by name, as ``jaxopt-lab compare --problems`` takes it
SUITE = {
    "quadratic_noisy": quadratic_noisy,
    "logistic": logistic,
    "digits_mlp": digits_mlp,
    "cnn": cnn,
}


def get(name: str) -> Problem:
    """The suite's problem ``name`` with its default sizes."""
    if not isinstance(name, str) or name not in SUITE:
        raise ValueError(
            f"`name`: no problem {name!r} in the suite; choose one of {sorted(SUITE)}, or "
            "build a jol.problems.Problem(loss_fn=..., init_fn=..., data=...)."
        )
    return SUITE[name]()
