"""Unit health: dead and saturated units, symmetric units, and recording activations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_unit_interval

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")

_REF = "Grosse & Ba, CSC421 lectures 7-8 (optimization)"


class LayerHealth(NamedTuple):
    """Dead and saturated units of one layer, over a batch of examples."""

    name: str  # the layer's name (key of the activations mapping)
    activation: str  # "relu", "tanh", "sigmoid" or "linear"
    num_units: int  # units (last axis of the activations)
    num_examples: int  # examples (all other axes, flattened)
    dead_fraction: float  # ReLU units with zero output on every example
    saturated_fraction: float  # tanh/sigmoid units in the flat region on every example
    dead_units: tuple[int, ...]  # indices of the dead units
    saturated_units: tuple[int, ...]  # indices of the saturated units
    mean_slope: float  # mean of phi'(z) / max phi' over units and examples (1 for linear)
    nonfinite_units: tuple[int, ...] = ()  # units with an inf or NaN value on some example

    @property
    def nonfinite_fraction(self) -> float:
        return len(self.nonfinite_units) / self.num_units if self.num_units else 0.0


class UnitHealth(NamedTuple):
    """What :func:`unit_health` returns: one :class:`LayerHealth` per layer."""

    layers: tuple[LayerHealth, ...]

    @property
    def dead_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of dead units."""
        return {layer.name: layer.dead_fraction for layer in self.layers}

    @property
    def saturated_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of saturated units."""
        return {layer.name: layer.saturated_fraction for layer in self.layers}

    @property
    def healthy(self) -> bool:
        """No dead, saturated or non-finite units in any layer."""
        return not any(
            layer.dead_units or layer.saturated_units or layer.nonfinite_units
            for layer in self.layers
        )

    @property
    def nonfinite_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of units with an inf or NaN activation."""
        return {layer.name: layer.nonfinite_fraction for layer in self.layers}

    def __str__(self) -> str:
        width = max([len(layer.name) for layer in self.layers] + [5])
        lines = [f"UnitHealth ({_REF}: dead/saturated units)"]
        for layer in self.layers:
            lines.append(
                f"  {layer.name:<{width}}  {layer.activation:<7}  {layer.num_units:4d} units  "
                f"dead {100 * layer.dead_fraction:5.1f}%  "
                f"saturated {100 * layer.saturated_fraction:5.1f}%  "
                f"mean slope {layer.mean_slope:.3f}"
                + (
                    f"  NON-FINITE {100 * layer.nonfinite_fraction:5.1f}%"
                    if layer.nonfinite_units
                    else ""
                )
            )
        return "\n".join(lines)


def _slope(kind: str, out: np.ndarray) -> np.ndarray:
    """phi'(z) / max phi', from the activation's outputs."""
    if kind == "relu":
        return (out > 0).astype(np.float64)
    if kind == "tanh":
        return 1.0 - out**2
    if kind == "sigmoid":
        return 4.0 * out * (1.0 - out)
    return np.ones_like(out)


_FUNCTIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "linear": lambda z: z,
}


def unit_health(
    activations: Mapping[str, jax.typing.ArrayLike],
    activation: str | Mapping[str, str] = "relu",
    *,
    preactivation: bool = False,
    saturation: float = 0.01,
) -> UnitHealth:
    r"""Per layer, the fraction of dead ReLU units and of saturated tanh/sigmoid units.

    Grosse & Ba (CSC421 lectures 7-8, plateaux): the weight derivative is
    :math:`\bar w_{ij} = \bar h_i \phi'(z_i) x_j`, so a unit whose :math:`\phi'(z_i)` is
    (nearly) zero on all the data stops learning. A ReLU unit whose input is negative on
    every example is *dead*; a tanh or sigmoid unit whose slope
    :math:`\phi'(z)/\max\phi'` is below ``saturation`` on every example is *saturated*
    (for tanh, :math:`|h| \ge 0.995` at the default). The recap table's diagnostic is
    the activation histogram; the workaround is the initial scale of W, or ReLU.

    Args:
      activations: layer name -> array of shape ``(..., units)``: every axis but the
        last indexes examples (e.g. from :func:`record_activations`).
      activation: ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``"linear"`` for every layer,
        or a mapping layer name -> kind; layers missing from the mapping are skipped.
      preactivation: the arrays are the inputs :math:`z` of the activation (e.g. the
        outputs of ``nnx.Linear`` layers) rather than its outputs :math:`h`.
      saturation: the relative slope below which a tanh/sigmoid unit counts as saturated.

    Returns:
      A :class:`UnitHealth`; ``.dead_fraction`` and ``.saturated_fraction`` map layer
      names to fractions; ``print`` it for a table.

    Raises:
      ValueError: an unknown activation kind, or a layer without a units axis.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> h = jnp.maximum(jnp.array([[1.0, -2.0, 0.5], [0.3, -1.0, -0.2]]), 0)
      >>> jol.diagnostics.unit_health({"hidden": h}).dead_fraction
      {'hidden': 0.3333333333333333}
    """
    if not isinstance(activations, Mapping) or not activations:
        raise TypeError(
            "`activations` must be a non-empty mapping of layer name -> array (units last), "
            f"got {type(activations).__name__}; e.g. jol.diagnostics.record_activations(...)."
        )
    if isinstance(saturation, bool | str) or not np.isscalar(saturation) or not 0 < saturation < 1:
        raise ValueError(f"`saturation` must be in (0, 1), got {saturation!r}; e.g. 0.01.")
    if isinstance(activation, Mapping):
        kinds = dict(activation)
    else:
        kinds = dict.fromkeys(activations, activation)
    for name, kind in kinds.items():
        if kind not in ACTIVATIONS:
            raise ValueError(
                f"`activation` for layer {name!r} must be one of {ACTIVATIONS}, got {kind!r}."
            )
    layers = []
    for name, values in activations.items():
        if name not in kinds:
            continue
        kind = kinds[name]
        x = np.asarray(values, np.float64)
        if x.ndim < 1 or x.shape[-1] == 0:
            raise ValueError(
                f"`activations[{name!r}]` must have a units axis last, got shape {x.shape}."
            )
        x = x.reshape(-1, x.shape[-1])
        bad = ~np.all(np.isfinite(x), axis=0)  # units with an inf or NaN: never healthy
        with np.errstate(invalid="ignore", over="ignore"):
            out = _FUNCTIONS[kind](x) if preactivation else x
            slope = _slope(kind, out)
        dead = (
            np.flatnonzero(np.all(out <= 0, axis=0) & ~bad) if kind == "relu" else np.array([], int)
        )
        saturated = (
            np.flatnonzero(np.all(slope < saturation, axis=0) & ~bad)
            if kind in ("tanh", "sigmoid")
            else np.array([], int)
        )
        slope = slope[:, ~bad]
        units = x.shape[1]
        layers.append(
            LayerHealth(
                name=name,
                activation=kind,
                num_units=units,
                num_examples=x.shape[0],
                dead_fraction=dead.size / units,
                saturated_fraction=saturated.size / units,
                dead_units=tuple(int(i) for i in dead),
                saturated_units=tuple(int(i) for i in saturated),
                mean_slope=float(slope.mean()) if slope.size else (math.nan if bad.any() else 1.0),
                nonfinite_units=tuple(int(i) for i in np.flatnonzero(bad)),
            )
        )
    return UnitHealth(tuple(layers))


class LayerSymmetry(NamedTuple):
    """Groups of identical hidden units in one hidden layer."""

    layer: int  # index of the hidden layer: between weights[layer] and weights[layer + 1]
    num_units: int  # units in the layer
    groups: tuple[tuple[int, ...], ...]  # sets (size >= 2) of units with identical weights
    num_distinct: int  # units that differ from each other (each group counts once)


class Symmetry(NamedTuple):
    """What :func:`symmetric_units` returns."""

    layers: tuple[LayerSymmetry, ...]  # one per hidden layer

    @property
    def found(self) -> bool:
        """Some hidden layer has two or more identical units."""
        return any(layer.groups for layer in self.layers)

    @property
    def symmetric_fraction(self) -> dict[int, float]:
        """Hidden layer -> fraction of its units that have an identical twin."""
        return {
            layer.layer: sum(len(g) for g in layer.groups) / layer.num_units
            for layer in self.layers
        }


def _unwrap(x: Any) -> Any:
    """The array inside an ``nnx.Variable`` (or ``x`` itself)."""
    return x.get_value() if hasattr(x, "get_value") else x


def _kernel_bias(item: Any, index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(kernel, bias) from an array, a (kernel, bias) pair, a mapping or an nnx.Linear."""
    if isinstance(item, Mapping):
        kernel, bias = item.get("kernel", item.get("w")), item.get("bias", item.get("b"))
    elif isinstance(item, tuple | list):
        kernel, bias = item[0], (item[1] if len(item) > 1 else None)
    elif hasattr(item, "kernel"):
        kernel, bias = item.kernel, getattr(item, "bias", None)
    else:
        kernel, bias = item, None
    kernel = np.asarray(_unwrap(kernel), np.float64)
    if kernel.ndim != 2:
        raise ValueError(
            f"`weights[{index}]` must be a 2-D kernel of shape (in, out) (Flax convention), "
            f"a (kernel, bias) pair or a mapping with 'kernel' and 'bias'; got a kernel of "
            f"shape {kernel.shape}."
        )
    if bias is not None:
        bias = np.asarray(_unwrap(bias), np.float64).reshape(-1)
    return kernel, bias


def symmetric_units(weights: Sequence[Any], *, rtol: float = 1e-4) -> Symmetry:
    r"""Hidden units whose incoming and outgoing weights are identical.

    Grosse & Ba (CSC421 lectures 7-8, saddle points): two hidden units with
    identical incoming and outgoing weights get identical updates, so they stay identical
    for ever; "don't initialize all your weights to zero", break the symmetry with small
    random values (recap table: symmetries, visualize W, initialize W randomly).

    Unit ``j`` of hidden layer ``l`` has incoming weights ``weights[l][:, j]`` (and bias
    ``j``) and outgoing weights ``weights[l + 1][j, :]``; units are grouped when both agree
    within ``rtol`` times the largest of these weights. The default allows for float32
    rounding, which makes twins differ by about 1e-6 of the weights after a few steps.

    Args:
      weights: the layers in order, each a kernel of shape ``(in, out)`` (Flax
        convention), a ``(kernel, bias)`` pair, a mapping with ``"kernel"``/``"bias"`` (or
        ``"w"``/``"b"``), or an ``nnx.Linear``.
      rtol: the tolerance, relative to the largest absolute weight of the two layers.

    Returns:
      A :class:`Symmetry`: per hidden layer the groups of identical units; ``.found``
      tells whether there are any.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> sym = jol.diagnostics.symmetric_units([jnp.zeros((4, 3)), jnp.zeros((3, 2))])
      >>> sym.layers[0].groups
      ((0, 1, 2),)
    """
    check_unit_interval(
        "rtol", rtol, "1e-4", "Pass a small relative tolerance, e.g. 1e-4 (0: exactly equal)."
    )
    if len(weights) < 2:
        raise ValueError(
            f"`weights` needs at least two layers (a hidden layer between them), got "
            f"{len(weights)}."
        )
    layers = [_kernel_bias(w, i) for i, w in enumerate(weights)]
    out = []
    for k in range(len(layers) - 1):
        (w_in, b_in), (w_out, _) = layers[k], layers[k + 1]
        units = w_in.shape[1]
        if w_out.shape[0] != units:
            raise ValueError(
                f"`weights[{k + 1}]` must have {units} rows (the units of layer {k}), got "
                f"shape {w_out.shape}."
            )
        parts = [w_in.T, w_out]
        if b_in is not None:
            parts.append(b_in[:, None])
        signature = np.concatenate(parts, axis=1)  # (units, fan_in + fan_out [+ 1])
        scale = float(np.abs(signature).max()) or 1.0
        groups, taken = [], np.zeros(units, bool)
        for j in range(units):
            if taken[j]:
                continue
            same = np.all(np.abs(signature - signature[j]) <= rtol * scale, axis=1) & ~taken
            if same.sum() >= 2:
                members = tuple(int(i) for i in np.flatnonzero(same))
                groups.append(members)
                taken[list(members)] = True
        distinct = units - sum(len(g) - 1 for g in groups)
        out.append(LayerSymmetry(k, units, tuple(groups), distinct))
    return Symmetry(tuple(out))


def record_activations(
    model: Any, *args: Any, include_output: bool = False, **kwargs: Any
) -> dict[str, jax.Array]:
    """Calls a Flax NNX model and records what its submodules produce.

    Uses ``nnx.capture`` with ``method_outputs=nnx.Intermediate``: the output of every
    submodule call (an ``nnx.Linear`` gives the pre-activations :math:`z` of the next
    nonlinearity), and every value the model sows with ``self.sow(nnx.Intermediate,
    name, value)`` (e.g. the hidden activations :math:`h`). Feed the result to
    :func:`unit_health`, with ``preactivation=True`` for the ``nnx.Linear`` outputs.

    Args:
      model: an ``nnx.Module``.
      *args: the model's inputs, e.g. a batch ``x``.
      include_output: keep the model's own output (key ``"output"``).
      **kwargs: keyword inputs of the model.

    Returns:
      A dict from the dotted path of the submodule or sown name (``"layers.0"``,
      ``"h1"``) to the recorded array; a submodule called several times gives
      ``"name[0]"``, ``"name[1]"``, ...

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxopt_lab as jol
      >>> model = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.relu,
      ...                        nnx.Linear(4, 2, rngs=nnx.Rngs(1)))
      >>> acts = jol.diagnostics.record_activations(model, jnp.ones((5, 3)))
      >>> sorted(acts), acts["layers.0"].shape
      (['layers.0', 'layers.2'], (5, 4))
    """
    from flax import nnx

    if not isinstance(model, nnx.Module):
        raise TypeError(f"`model` must be a flax.nnx.Module, got {type(model).__name__}.")
    forward = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)
    output, captured = forward(*args, **kwargs)
    records: dict[str, jax.Array] = {}
    for path, variable in nnx.to_flat_state(captured):
        keys = [str(k) for k in path]
        if keys and keys[-1] == "__call__":
            keys = keys[:-1]
        name = ".".join(keys)
        if not name:
            continue  # the model's own output: below
        values = _unwrap(variable)
        values = values if isinstance(values, tuple) else (values,)
        for i, v in enumerate(values):
            records[name if len(values) == 1 else f"{name}[{i}]"] = jnp.asarray(v)
    if include_output:
        records["output"] = output
    return records
