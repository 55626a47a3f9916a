"""Problems for the command line: the demo's digits MLP, and a user's own.

A :class:`Problem` (the library's :class:`jaxopt_lab.problems.Problem`) is what
``jaxopt-lab sweep --problem`` and ``jaxopt-lab hessian --problem`` train and analyze:
the arguments ``jol.sweep`` and ``jol.train`` take, in one object. A user writes a
module with a function that returns one::

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
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxopt_lab.problems import FIELDS, MLP, Problem, ProblemError, digits_mlp

__all__ = ["FIELDS", "MLP", "Problem", "ProblemError", "as_problem", "digits_mlp", "load"]


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
