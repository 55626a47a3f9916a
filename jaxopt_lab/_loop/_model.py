"""How the engine calls a loss: one interface over the three kinds of model users bring.

- ``"params"``: a pytree of arrays, all trained; ``loss_fn(params, batch) -> scalar``.
- ``"state"``: a functional model with state (Linen ``batch_stats``, hand-written
  running averages): ``loss_fn(params, state, batch, key) -> (loss, new_state)``, called
  with a fresh ``key`` at every training step and with ``key=None`` for evaluation.
- ``"nnx"``: a Flax NNX module; ``loss_fn(model, batch) -> scalar``. The optimizer acts on
  the variables ``wrt`` selects (``nnx.Param`` by default); every other variable
  (BatchNorm statistics, ``nnx.Rngs`` counters) is carried from step to step. Training
  steps see the module in training mode, evaluations in evaluation mode.

Every kind is seen by the engine as ``(params, model_state)``: the differentiable part
and the rest (``None`` for ``"params"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def is_nnx_module(obj: Any) -> bool:
    from flax import nnx

    return isinstance(obj, nnx.Module)


def _views(module: Any) -> tuple[Any, Any]:
    """The module in training and in evaluation mode (BatchNorm, Dropout and alike)."""
    from flax import nnx

    train = nnx.view(
        module, deterministic=False, use_running_average=False, raise_if_not_found=False
    )
    evaluate = nnx.view(
        module, deterministic=True, use_running_average=True, raise_if_not_found=False
    )
    return train, evaluate


@dataclasses.dataclass(frozen=True)
class Model:
    """A static description of the model: which kind, its loss, NNX graph definitions."""

    __static_fields__ = True  # compared field by field in a program's cache key

    kind: str  # "params" | "state" | "nnx"
    loss_fn: Callable
    train_graph: Any = None  # nnx: GraphDef of the module in training mode
    eval_graph: Any = None  # nnx: GraphDef of the module in evaluation mode
    wrt: Any = None  # nnx: the filter of the trained variables

    @property
    def has_state(self) -> bool:
        return self.kind != "params"

    @property
    def uses_key(self) -> bool:
        """Whether training steps pass a per-step key to ``loss_fn``."""
        return self.kind == "state"

    def train_loss(self, params: Any, state: Any, batch: Any, key: Any) -> tuple[Any, Any]:
        """``(loss, new_state)`` of a training step (training mode, state updated)."""
        if self.kind == "params":
            return self.loss_fn(params, batch), state
        if self.kind == "state":
            out = self.loss_fn(params, state, batch, key)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    "`loss_fn` of a model with `state` must return `(loss, new_state)`, got "
                    f"{type(out).__name__}; return the updated state next to the loss."
                )
            loss, new_state = out
            if jax.tree.structure(new_state) != jax.tree.structure(state):
                raise TypeError(
                    "`loss_fn` returned a `new_state` structured unlike `state` "
                    f"({jax.tree.structure(new_state)} != {jax.tree.structure(state)}); "
                    "return the state with the same keys and shapes."
                )
            return loss, new_state
        from flax import nnx

        # Fresh Variable objects at this trace level (the state may come from an outer
        # trace, where NNX refuses the updates BatchNorm makes).
        module = nnx.merge(self.train_graph, *jax.tree.map(lambda x: x, (params, state)))
        loss = self.loss_fn(module, batch)
        _, _, new_state = nnx.split(module, self.wrt, ...)
        return loss, new_state

    def eval_loss(self, params: Any, state: Any, batch: Any) -> Any:
        """The loss in evaluation mode; the state is not updated."""
        if self.kind == "params":
            return self.loss_fn(params, batch)
        if self.kind == "state":
            return self.train_loss(params, state, batch, None)[0]
        return self.loss_fn(self.module(params, state), batch)

    def module(self, params: Any, state: Any) -> Any:
        """The NNX module (evaluation mode) holding ``params`` and ``state``; else None."""
        if self.kind != "nnx":
            return None
        from flax import nnx

        return nnx.merge(self.eval_graph, params, state)

    def split(self, built: Any) -> tuple[Any, Any]:
        """``(params, model_state)`` of what ``init_fn`` returned (traceable)."""
        if self.kind == "params":
            return built, None
        if self.kind == "state":
            return built
        from flax import nnx

        _, params, state = nnx.split(built, self.wrt, ...)
        return params, state


def _check_trainable(params: Any, argument: str) -> None:
    if not jax.tree.leaves(params):
        raise ValueError(
            f"`{argument}` holds no arrays ({params!r}), so there is nothing to train; pass "
            "the model's parameters."
        )
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = getattr(leaf, "dtype", None) or jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            where = jax.tree_util.keystr(path) or "(the root)"
            raise TypeError(
                f"`{argument}` has a leaf {where} of dtype {dtype}, which cannot be "
                "differentiated. For a Flax NNX model pass the module itself (its "
                "`nnx.Param`s are trained, other variables are carried); for a model with "
                "other state, pass that state separately as `state=`."
            )


def _nnx_model(loss_fn: Callable, module: Any, wrt: Any) -> tuple[Model, Any, Any]:
    """``(model, trained, rest)`` of an NNX module (concrete or abstract).

    ``wrt`` selects the trained variables (default ``nnx.Param``); the graph definitions
    of the training and evaluation views share the split of the state.
    """
    from flax import nnx

    wrt = nnx.Param if wrt is None else wrt
    train_view, eval_view = _views(module)
    train_graph, trained, rest = nnx.split(train_view, wrt, ...)
    if not jax.tree.leaves(trained):
        raise ValueError(
            f"`wrt` = {wrt!r} selects no variable of the module, so nothing would be "
            "trained; pass a filter such as nnx.Param (the default)."
        )
    _check_trainable(trained, "wrt")
    eval_graph = nnx.split(eval_view, wrt, ...)[0]
    return Model("nnx", loss_fn, train_graph, eval_graph, wrt), trained, rest


def from_params(loss_fn: Callable, params: Any, state: Any, wrt: Any) -> tuple[Model, Any, Any]:
    """The model of a ``train`` call: ``(model, params, model_state)``."""
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}.")
    if is_nnx_module(params):
        if state is not None:
            raise ValueError(
                "`state` is for functional models; an nnx.Module carries its own state "
                "(BatchNorm statistics, RNG streams). Drop `state=`."
            )
        return _nnx_model(loss_fn, params, wrt)
    _check_trainable(params, "params")
    if state is not None and not jax.tree.leaves(state):
        raise ValueError(
            f"`state` holds no arrays ({state!r}); pass the model's state (e.g. BatchNorm "
            "statistics), or drop `state=` for a model without one."
        )
    if state is not None:
        return Model("state", loss_fn), params, state
    return Model("params", loss_fn), params, None


def from_init(
    loss_fn: Callable, init_fn: Callable, has_state: bool, wrt: Any, key: jax.Array
) -> Model:
    """The model of a ``sweep``, from the abstract value of ``init_fn(key)``."""
    if not callable(init_fn):
        raise TypeError(f"`init_fn` must be callable, got {init_fn!r}.")
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}.")
    from flax import nnx

    built = nnx.eval_shape(init_fn, key)
    if is_nnx_module(built):
        if has_state:
            raise ValueError(
                "`has_state=True` is for functional models returning `(params, state)`; "
                "`init_fn` returns an nnx.Module, which carries its own state. Drop it."
            )
        return _nnx_model(loss_fn, built, wrt)[0]
    if has_state:
        if not (isinstance(built, tuple) and len(built) == 2):
            raise TypeError(
                "with `has_state=True`, `init_fn(key)` must return `(params, state)`, got "
                f"{type(built).__name__}."
            )
        _check_trainable(built[0], "init_fn(key)[0]")
        return Model("state", loss_fn)
    _check_trainable(built, "init_fn(key)")
    return Model("params", loss_fn)
