"""The grid of a sweep: validation, the run list, and the check that every key is used."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._loop import checks


class Runs(NamedTuple):
    """Every (combination, seed) of a sweep, combination-major, seed-minor."""

    hparams: dict[str, np.ndarray]  # name -> (runs,) value of each run
    seeds: np.ndarray  # int64 (runs,): seed of each run
    num_combinations: int
    num_seeds: int


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """The ``(init_key, data_key)`` of a sweep's seed ``seed``.

    ``sweep`` initialises the parameters of every run with seed ``s`` as
    ``init_fn(init_key)`` and draws its minibatches with ``data_key``, so
    ``jol.train(loss_fn, init_fn(init_key), make_optimizer(hparams), data, key=data_key,
    ...)`` reproduces a run.
    """
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, data_key


def check_grid(grid: Any) -> dict[str, np.ndarray]:
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            f"`grid` must be a non-empty dict of hyperparameter name -> list of values, "
            f"got {grid!r}; e.g. grid={{'learning_rate': [0.1, 0.03, 0.01]}}."
        )
    out = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise ValueError(f"`grid` keys must be strings, got {name!r}.")
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"`grid[{name!r}]` must be a non-empty 1-D list of numbers, got {values!r}."
            )
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"`grid[{name!r}]` must hold numbers (they are traced), got {values!r}. "
                "Make a separate sweep for each non-numeric option."
            )
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"`grid[{name!r}]` holds a non-finite value ({values!r}); every run of a "
                "sweep needs a finite setting."
            )
        out[name] = arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int32)
    return out


def check_trials(trials: Any) -> dict[str, np.ndarray]:
    """A sample of trials (a list of dicts name -> number, as ``jol.search`` returns) as
    name -> (trials,) values, checked like a grid's."""
    if isinstance(trials, str | bytes) or not isinstance(trials, Sequence) or not trials:
        raise ValueError(
            f"`grid` must be a dict of name -> values (a product) or a non-empty list of "
            f"trials (dicts name -> value, e.g. from jol.search), got {trials!r}."
        )
    first = trials[0]
    if not isinstance(first, Mapping) or not first:
        raise ValueError(f"`grid[0]` must be a non-empty dict name -> value, got {first!r}.")
    names = list(first)
    for i, trial in enumerate(trials):
        if not isinstance(trial, Mapping) or sorted(trial) != sorted(names):
            raise ValueError(
                f"`grid[{i}]` must be a dict with the keys of `grid[0]` ({sorted(names)}), "
                f"got {trial!r}."
            )
    columns = check_grid({k: [trial[k] for trial in trials] for k in names})
    return columns


def check_seeds(seeds: int | Sequence[int]) -> np.ndarray:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"`seeds` must be >= 1 (or a list of seeds), got {seeds}.")
        return np.arange(seeds)
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"`seeds` must be a positive int or a list of ints, got {seeds!r}.")
    if len(set(arr.tolist())) != arr.size:
        raise ValueError(f"`seeds` has duplicates: {seeds!r}.")
    return arr.astype(np.int64)


def make_runs(grid: dict[str, np.ndarray], seeds: np.ndarray, *, product: bool = True) -> Runs:
    """Every setting x seed: the product of the grid's values, or (``product=False``)
    the settings as given (a sample of trials: column ``i`` of every name)."""
    if product:
        combos = list(itertools.product(*(range(v.size) for v in grid.values())))
        grid = {
            name: values[[c[i] for c in combos]] for i, (name, values) in enumerate(grid.items())
        }
    num = next(iter(grid.values())).size
    hparams = {name: np.repeat(values, seeds.size) for name, values in grid.items()}
    return Runs(hparams, np.tile(seeds, num), num, seeds.size)


class _Tracking(Mapping):
    """A read-only mapping that records which keys were read."""

    def __init__(self, values: dict[str, Any], read: set[str]):
        self._values = values
        self._read = read

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            raise KeyError(name)
        self._read.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def check_make_optimizer(
    make_optimizer: Callable, init_params: Callable, grid: dict[str, np.ndarray]
) -> None:
    """Traces ``make_optimizer`` once: every grid key must be read, no other key.

    ``init_params(key)`` gives the trained parameters of a run, for ``optimizer.init``.
    """
    read: set[str] = set()

    def probe(hparams):
        try:
            optimizer = make_optimizer(_Tracking(hparams, read))
        except KeyError as e:
            raise ValueError(
                f"`make_optimizer` reads hparams[{e.args[0]!r}], which is not a key of "
                f"`grid` (keys: {sorted(grid)}); add it to `grid` or fix the name."
            ) from None
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
            raise TypeError(
                f"`make_optimizer` reads a grid value ({', '.join(sorted(read))}) as a Python "
                "number (float(), int(), `if`, `while`, a comparison in Python): grid values "
                "are traced, one compiled program runs every setting. Pass them to the "
                "optimizer as they are (jol and optax accept arrays), choose with "
                "jnp.where / optax.inject_hyperparams, or make a separate sweep for each "
                "choice of kind (e.g. which optimizer)."
            ) from None
        if not checks.is_optimizer(optimizer):
            raise TypeError(
                "`make_optimizer(hparams)` must return an optax.GradientTransformation, "
                f"got {optimizer!r}."
            )
        return optimizer.init(init_params(jax.random.PRNGKey(0)))

    abstract = {k: jax.ShapeDtypeStruct((), jnp.dtype(v.dtype)) for k, v in grid.items()}
    jax.eval_shape(probe, abstract)
    unused = [k for k in grid if k not in read]
    if unused:
        raise ValueError(
            f"`grid` key(s) {unused} are never read by `make_optimizer`, so those runs "
            "would be identical; use them in `make_optimizer(hparams)` or drop them."
        )
