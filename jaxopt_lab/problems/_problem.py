"""``Problem``: a loss, a starting point and data, in one object."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

FIELDS = (
    "loss_fn, init_fn (or model), data, and optionally eval_data, has_state, name, "
    "target, steps, batch_size, description"
)


class ProblemError(ValueError):
    """A problem that cannot be imported or does not describe a problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """What ``jol.compare`` and the command line train: a loss, a starting point, data.

    Attributes:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (``loss_fn(model, batch)`` for an NNX
        module; ``loss_fn(params, state, batch, key) -> (loss, new_state)`` with
        ``has_state``), as ``jol.train`` takes it.
      init_fn: ``init_fn(key) -> params`` (a pytree, an ``nnx.Module``, or ``(params,
        state)`` with ``has_state``): every seed of a sweep starts from its own key.
      model: instead of ``init_fn``, one starting point (an ``nnx.Module`` or a pytree):
        every seed starts there and differs only in the order of its batches.
      data: the training data, a pytree of arrays with a leading example axis.
      eval_data: optional validation data, structured like ``data``.
      has_state: ``init_fn`` returns ``(params, state)`` of a functional model.
      name: shown in what is printed and in file names.
      accuracy_fn: optional ``accuracy_fn(params, batch) -> fraction correct``.
      target: the validation loss a tuned optimizer should reach within ``steps`` (the
        "time to target" of a comparison), or ``None``.
      steps: the default training length (updates per run) of a comparison, or ``None``.
      batch_size: the default examples per update (``None``: full batch).
      description: one line saying what the problem is and where it comes from.
    """

    loss_fn: Callable[..., Any]
    data: Any
    init_fn: Callable[[jax.Array], Any] | None = None
    model: Any = None
    eval_data: Any = None
    has_state: bool = False
    name: str = "problem"
    accuracy_fn: Callable[..., Any] | None = None
    target: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    description: str = ""

    def __post_init__(self):
        where = f"problem {self.name!r}"
        if not callable(self.loss_fn):
            raise ProblemError(f"{where}: loss_fn must be callable, got {self.loss_fn!r}")
        if (self.init_fn is None) == (self.model is None):
            raise ProblemError(
                f"{where}: give init_fn (key -> parameters) or model (one starting point), "
                + ("not both" if self.init_fn is not None else "neither was given")
            )
        if self.init_fn is not None and not callable(self.init_fn):
            raise ProblemError(f"{where}: init_fn must be callable, got {self.init_fn!r}")
        if self.data is None or not jax.tree.leaves(self.data):
            raise ProblemError(f"{where}: data must be a pytree of arrays, got {self.data!r}")
        if self.target is not None and (
            isinstance(self.target, bool)
            or not isinstance(self.target, int | float)
            or not math.isfinite(self.target)
        ):
            raise ProblemError(
                f"{where}: target must be a finite number (a validation loss) or None, "
                f"got {self.target!r}"
            )
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ProblemError(
                    f"{where}: {name} must be a whole number >= 1 or None, got {value!r}"
                )

    def start(self, key: jax.Array) -> Any:
        """The starting point of the seed with ``key``."""
        if self.init_fn is not None:
            return self.init_fn(key)
        if isinstance(self.model, nnx.Module):
            return nnx.clone(self.model)
        return self.model

    def sweep_init_fn(self) -> Callable[[jax.Array], Any]:
        """``init_fn`` for ``jol.sweep``: the problem's own, or one returning ``model``."""
        if self.init_fn is not None:
            return self.init_fn
        model = self.model
        if isinstance(model, nnx.Module):
            graphdef, state = nnx.split(model)
            return lambda key: nnx.merge(graphdef, state)
        return lambda key: model

    def num_params(self) -> int:
        """The number of trained parameters D (``nnx.Param`` for an NNX module)."""
        start = self.model if self.init_fn is None else None
        if start is None:
            start = jax.eval_shape(self.init_fn, jax.random.key(0))
        if self.has_state:
            start = start[0]
        if isinstance(start, nnx.Module):
            start = nnx.state(start, nnx.Param)
        return sum(int(leaf.size) for leaf in jax.tree.leaves(start))
