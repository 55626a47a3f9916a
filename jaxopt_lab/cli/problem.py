"""Problems for the command line: the demo's digits MLP, and a user's own.

A :class:`Problem` is what ``jaxopt-lab sweep --problem`` and ``jaxopt-lab hessian
--problem`` train and analyze: the arguments ``jol.sweep`` and ``jol.train`` take, in one
object. A user writes a module with a function that returns one::

    # my_problem.py
    import jax, jax.numpy as jnp
    from jaxopt_lab.cli import Problem

    def make_problem():
        x = jax.random.normal(jax.random.key(0), (256, 8))
        y = x @ jnp.arange(8.0)
        def loss_fn(params, batch):
            return jnp.mean((batch[0] @ params["w"] - batch[1]) ** 2)
        return Problem(
            loss_fn=loss_fn,
            init_fn=lambda key: {"w": 0.1 * jax.random.normal(key, (8,))},
            data=(x[:200], y[:200]),
            eval_data=(x[200:], y[200:]),
        )

and runs ``jaxopt-lab sweep --problem my_problem:make_problem`` (the module is found on
the current folder and ``sys.path``; ``path/to/file.py:make_problem`` works too). A
mapping with the same keys is accepted as well. The demo's digits MLP
(:func:`digits_mlp`) is built the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxopt_lab.datasets import NUM_CLASSES, NUM_FEATURES, digits

FIELDS = "loss_fn, init_fn (or model), data, and optionally eval_data, has_state, name"


class ProblemError(ValueError):
    """A ``--problem`` that cannot be imported or does not describe a problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """What the command line trains: a loss, a starting point, data.

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
      name: shown in what the command prints and in its file names.
      accuracy_fn: optional ``accuracy_fn(params, batch) -> fraction correct``.
    """

    loss_fn: Callable[..., Any]
    data: Any
    init_fn: Callable[[jax.Array], Any] | None = None
    model: Any = None
    eval_data: Any = None
    has_state: bool = False
    name: str = "problem"
    accuracy_fn: Callable[..., Any] | None = None

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


def as_problem(obj: Any, source: str) -> Problem:
    """``obj`` (a :class:`Problem` or a mapping of its fields) as a :class:`Problem`."""
    if isinstance(obj, Problem):
        return obj
    if isinstance(obj, Mapping):
        fields = {f.name for f in dataclasses.fields(Problem)}
        unknown = sorted(set(obj) - fields)
        if unknown:
            raise ProblemError(
                f"{source} returned a mapping with unknown keys {unknown}; a problem has {FIELDS}"
            )
        missing = [k for k in ("loss_fn", "data") if k not in obj]
        if "init_fn" not in obj and "model" not in obj:
            missing.append("init_fn (or model)")
        if missing:
            raise ProblemError(
                f"{source} returned a mapping without {', '.join(missing)}; a problem has {FIELDS}"
            )
        try:
            return Problem(**{"name": source, **obj})
        except ProblemError as e:
            raise ProblemError(f"{source}: {e}") from None
    raise ProblemError(
        f"{source} returned {type(obj).__name__}, not a jaxopt_lab.cli.Problem or a dict "
        f"with {FIELDS}"
    )


def load(spec: str) -> Problem:
    """The problem ``module:function`` (or ``path/to/file.py:function``) returns.

    Raises :class:`ProblemError` (one line: what is missing and how to fix it) when the
    module cannot be imported, has no such function, or the function fails or returns
    something that is not a problem.
    """
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise ProblemError(f"expected MODULE:FUNCTION (e.g. my_problem:make_problem), got {spec!r}")
    module = _import(module_name)
    func = getattr(module, func_name, None)
    if func is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ProblemError(
            f"module {module_name!r} has no function {func_name!r} "
            f"(it has: {', '.join(public[:8]) or 'no public functions'})"
        )
    if not callable(func):
        raise ProblemError(f"{spec} is a {type(func).__name__}, not a function")
    try:
        obj = func()
    except Exception as e:
        raise ProblemError(f"{spec}() raised {type(e).__name__}: {e}") from None
    return as_problem(obj, spec)


def _import(name: str) -> Any:
    if name.endswith(".py") or os.sep in name:
        path = os.path.abspath(os.path.expanduser(name))
        if not os.path.isfile(path):
            raise ProblemError(f"no file {name!r}; give MODULE:FUNCTION or FILE.py:FUNCTION")
        spec = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(path))[0], path
        )
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise ProblemError(f"cannot import {name!r}: {type(e).__name__}: {e}") from None
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `jaxopt-lab` is a console script: add the folder
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise ProblemError(
                f"no module named {name!r} on the current folder or sys.path; run from "
                "the folder that holds it, or give FILE.py:FUNCTION"
            ) from None
        raise ProblemError(f"cannot import {name!r}: {type(e).__name__}: {e}") from None
    except Exception as e:
        raise ProblemError(f"cannot import {name!r}: {type(e).__name__}: {e}") from None


# --- parameters from a checkpoint ---------------------------------------------------------


def load_params(problem: Problem, directory: str) -> Any:
    """The problem's starting point with its parameters read from ``directory``.

    ``directory`` is a ``checkpoint_dir`` of ``jol.train`` (its newest save is read) or
    an orbax checkpoint of the parameters (``ocp.StandardCheckpointer().save(path,
    params)``; for an NNX module, of ``nnx.state(model, nnx.Param)``). The parameters
    must have the structure and shapes of the problem's own (``init_fn``'s or
    ``model``'s); the rest of the model (BatchNorm statistics, ...) is the problem's.
    """
    import pathlib

    from jaxopt_lab._loop import _checkpoint as ckpt
    from jaxopt_lab.cli.args import one_line

    path = pathlib.Path(directory).expanduser()
    if not path.is_dir():
        raise ProblemError(f"argument --checkpoint: {directory!r} is not a folder")
    start = problem.start(jax.random.key(0))
    params = start[0] if problem.has_state else start
    is_module = isinstance(params, nnx.Module)
    template = nnx.state(params, nnx.Param) if is_module else params
    want = jax.tree.leaves(template)
    if (path / "meta.json").is_file():  # jol.train's checkpoint_dir: its newest save
        try:
            newest = ckpt.read_newest(path, "train_")
        except (ValueError, KeyError, TypeError) as e:
            raise ProblemError(
                f"argument --checkpoint: {directory!r} is not a readable jol.train "
                f"checkpoint_dir ({one_line(e)}); give a jol.train checkpoint_dir or an "
                "orbax checkpoint"
            ) from None
        if newest is None:
            raise ProblemError(
                f"argument --checkpoint: {directory!r} holds no jol.train save (sweep "
                "checkpoints hold many runs: retrain the one you want with jol.train)"
            )
        name, saved = newest
        leaves = [saved[f"s{i:05d}"] for i in range(len(want)) if f"s{i:05d}" in saved]
        source = f"jol.train save {name}"
    else:
        try:
            import orbax.checkpoint as ocp

            with warnings.catch_warnings():  # orbax: "Sharding info not provided"
                warnings.simplefilter("ignore", UserWarning)
                restored = ocp.PyTreeCheckpointer().restore(path.resolve())
        except Exception as e:
            raise ProblemError(
                f"argument --checkpoint: cannot read {directory!r} as an orbax checkpoint "
                f"({type(e).__name__}: {str(e)[:160]}); give a jol.train checkpoint_dir or "
                "the folder of ocp.StandardCheckpointer().save(path, params)"
            ) from None
        leaves = jax.tree.leaves(restored)
        source = "orbax checkpoint"
    shapes = [tuple(x.shape) for x in leaves[: len(want)]]
    if len(leaves) < len(want) or shapes != [tuple(x.shape) for x in want]:
        raise ProblemError(
            f"argument --checkpoint: the {source} in {directory!r} holds parameters of "
            f"shapes {shapes[:4]}{'...' if len(shapes) > 4 else ''}, but {problem.name} has "
            f"{[tuple(x.shape) for x in want][:4]}; give the problem it was trained on"
        )
    new = jax.tree.unflatten(
        jax.tree.structure(template),
        [jnp.asarray(x, w.dtype) for x, w in zip(leaves, want, strict=False)],
    )
    if is_module:
        nnx.update(params, new)
        new = params
    return (new, start[1]) if problem.has_state else new


# --- the demo's problem: an NNX MLP on the bundled digits -------------------------------------


class MLP(nnx.Module):
    """64 pixels -> ``hidden`` tanh units -> 10 logits."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(NUM_FEATURES, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


@functools.cache
def digits_mlp(hidden: int = 32) -> Problem:
    """The demo's problem: :class:`MLP` on the bundled digits, as a pure function of its
    ``nnx.State`` (split once into a static graph and the state).

    Cached per size: the same function objects come back for the same ``hidden``, so
    compiled programs are reused between the sweep, the retraining and the Hessian.

    Example:
      >>> from jaxopt_lab.cli.problem import digits_mlp
      >>> digits_mlp(16).num_params()
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

    ds = digits()
    return Problem(
        loss_fn=loss_fn,
        init_fn=init_fn,
        data=ds.train,
        eval_data=ds.validation,
        name=f"digits MLP 64-{hidden}-10",
        accuracy_fn=accuracy_fn,
    )
