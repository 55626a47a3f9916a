"""The demo's model: a small Flax NNX MLP on the bundled digits, as a pure function of its state.

``jol.sweep`` and ``jol.train`` take ``loss_fn(params, batch)`` on a pytree, so the
module is split once into a static graph and a state pytree (``nnx.split``);
``init_fn(key)`` builds a fresh model and returns its state (jit- and vmap-safe), and
``loss_fn`` merges the state back into a model inside the loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxopt_lab.datasets import NUM_CLASSES, NUM_FEATURES


class MLP(nnx.Module):
    """64 pixels -> ``hidden`` tanh units -> 10 logits."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(NUM_FEATURES, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


class DemoModel(NamedTuple):
    """The functional view of :class:`MLP`: what ``jol.sweep`` and ``jol.train`` need."""

    hidden: int  # hidden units
    graphdef: Any  # nnx.GraphDef of the MLP (static)
    init_fn: Callable[[jax.Array], Any]  # key -> nnx.State (the parameters)
    loss_fn: Callable[[Any, Any], jax.Array]  # (state, batch) -> mean cross-entropy
    accuracy_fn: Callable[[Any, Any], jax.Array]  # (state, batch) -> fraction correct

    def num_params(self) -> int:
        """The number of parameters D."""
        state = jax.eval_shape(self.init_fn, jax.random.key(0))
        return sum(leaf.size for leaf in jax.tree.leaves(state))


@functools.cache
def make_model(hidden: int = 32) -> DemoModel:
    """The demo MLP with ``hidden`` units, split into graph and state (cached per size).

    The same function objects are returned for the same ``hidden``, so compiled programs
    are reused between the sweep, the retraining and the Hessian analysis.

    Example:
      >>> import jax
      >>> from jaxopt_lab._demo_model import make_model
      >>> model = make_model(16)
      >>> state = model.init_fn(jax.random.key(0))
      >>> model.num_params()
      1210
    """
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: MLP(hidden, rngs=nnx.Rngs(0))))

    def init_fn(key: jax.Array) -> Any:
        return nnx.split(MLP(hidden, rngs=nnx.Rngs(params=key)))[1]

    def logits(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    def loss_fn(state: Any, batch: Any) -> jax.Array:
        out = logits(state, batch.x)
        return optax.softmax_cross_entropy_with_integer_labels(out, batch.y).mean()

    def accuracy_fn(state: Any, batch: Any) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(state, batch.x), axis=-1) == batch.y)

    return DemoModel(hidden, graphdef, init_fn, loss_fn, accuracy_fn)
