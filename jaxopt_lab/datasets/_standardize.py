r"""``standardize``: center and scale input features, the cure for ill-conditioned inputs.

For a linear unit with squared error the Hessian is the second-moment matrix of the inputs,
:math:`H = \frac1N \sum_i x_i x_i^\top` (LeCun, "Optimization for Deep Learning",
lecture 001). A large common offset or features in different units make it
ill-conditioned, and gradient descent crawls along the narrow ravine (Grosse & Ba,
"CSC421 Lectures 7-8: Optimization", lecture 000; Eskandari, "Deep Learning
(Optimization)", lecture 004). The cure in all three: center every input to zero mean and
scale it to unit variance, :math:`\tilde x_j = (x_j - \mu_j)/\sigma_j`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_nonnegative


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields") and hasattr(obj, "_replace")


def _as_float(name: str, value: Any) -> np.ndarray:
    """``value`` as a floating NumPy array with a leading example axis."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float32)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"`{name}` must hold real numbers to standardize, got dtype {arr.dtype}. Pass "
            "numeric features (labels and other fields can be left out of `fields`)."
        )
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(
            f"`{name}` must have a leading example axis with at least one example, got shape "
            f"{arr.shape}."
        )
    return arr


def _constant(mean: np.ndarray, std: np.ndarray, eps: float) -> np.ndarray:
    """Features whose spread is at most ``eps`` relative to their size: left at 0."""
    return std <= eps * (1.0 + np.abs(mean))


def _transform(
    name: str, value: Any, mean: np.ndarray, std: np.ndarray, constant: np.ndarray
) -> Any:
    """``(x - mean) / std`` per feature; constant features become exactly 0."""
    arr = _as_float(name, value)
    if arr.shape[1:] != mean.shape:
        raise ValueError(
            f"`{name}` has features of shape {arr.shape[1:]}, but the statistics were computed "
            f"on features of shape {mean.shape}. Standardize data with the same features as "
            "the training data."
        )
    scale = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, std))
    out = ((arr.astype(np.float64) - mean[None]) * scale[None]).astype(arr.dtype)
    return jnp.asarray(out) if isinstance(value, jax.Array) else out


class Standardized(NamedTuple):
    """What :func:`standardize` returns; ``apply`` standardizes other data the same way."""

    data: Any  # the data, with each standardized field centered and scaled per feature
    mean: Any  # per-feature means mu_j: an array for an array input, else {field: array}
    std: Any  # per-feature standard deviations sigma_j (1/N normalisation), same layout
    constant: Any  # per-feature bool: sigma_j ~ 0, the feature was centered and left at 0
    fields: tuple[str, ...]  # the standardized fields; () for an array input

    def apply(self, other: Any) -> Any:
        """``other`` (e.g. validation data) standardized with *these* training statistics.

        Using the validation set's own mean and std would move it differently from the
        training inputs the model was fitted on; the statistics of the training data
        define the transformation for every split.

        Raises:
          ValueError, TypeError: when ``other`` is not laid out like the training data.
        """
        if not self.fields:
            if isinstance(other, Mapping) or _is_namedtuple(other):
                raise TypeError(
                    "`other` must be an array: the statistics were computed on a plain array, "
                    f"got a {type(other).__name__}."
                )
            return _transform("other", other, self.mean, self.std, self.constant)
        values = {}
        for field in self.fields:
            values[field] = _transform(
                f"other.{field}",
                _get(other, field, "other"),
                self.mean[field],
                self.std[field],
                self.constant[field],
            )
        return _replace(other, values)


def _get(data: Any, field: str, name: str) -> Any:
    if _is_namedtuple(data):
        if field not in data._fields:
            raise ValueError(
                f"`{name}` ({type(data).__name__}) has no field {field!r}; its fields are "
                f"{data._fields}. Pass `fields` naming some of them."
            )
        return getattr(data, field)
    if isinstance(data, Mapping):
        if field not in data:
            raise ValueError(
                f"`{name}` has no key {field!r}; its keys are {tuple(data)}. Pass `fields` "
                "naming some of them."
            )
        return data[field]
    raise TypeError(
        f"`{name}` must be an array, a NamedTuple (like jol.datasets.digits().train) or a "
        f"dict, got a {type(data).__name__}."
    )


def _replace(data: Any, values: dict[str, Any]) -> Any:
    if _is_namedtuple(data):
        return data._replace(**values)
    out = dict(data)
    out.update(values)
    return type(data)(out) if type(data) is not dict else out


def standardize(data: Any, *, fields: Sequence[str] = ("x",), eps: float = 1e-8) -> Standardized:
    r"""Centers and scales each input feature to mean 0 and standard deviation 1.

    .. math::
       \tilde x_{ij} = \frac{x_{ij} - \mu_j}{\sigma_j}, \qquad
       \mu_j = \frac1N \sum_i x_{ij}, \qquad
       \sigma_j^2 = \frac1N \sum_i (x_{ij} - \mu_j)^2

    over the examples :math:`i` (the leading axis), separately for every feature :math:`j`
    (every entry of the trailing axes: a pixel of an image). For a linear unit the Hessian
    of the squared error is :math:`\frac1N \sum_i x_i x_i^\top` (LeCun, "Optimization for
    Deep Learning", lecture 001); after standardizing it is the inputs' correlation
    matrix, with unit diagonal and no offset direction, so its condition number, and the
    number of gradient-descent steps, drop (Grosse & Ba, "CSC421 Lectures 7-8:
    Optimization", lecture 000: "center your inputs to zero mean and unit variance";
    Eskandari, "Deep Learning (Optimization)", lecture 004).

    A constant feature (:math:`\sigma_j \le \text{eps}\,(1 + |\mu_j|)`, such as the
    digits' always-blank corner pixels) has nothing to scale: it is centered and left at
    exactly 0, never divided by (nearly) zero, so no NaN or blown-up rounding noise
    appears. Its weight then receives no gradient, as it carried no information. The
    mask is returned as ``constant``.

    Statistics are computed in float64; the standardized arrays keep the input's float
    dtype (integers become float32), and a ``jax.Array`` comes back as one.

    Args:
      data: a NamedTuple with the fields to standardize (e.g.
        ``jol.datasets.digits().train``, whose ``x`` is standardized and ``y`` kept), a
        dict, or a plain array (then standardized as a whole and ``fields`` is ignored).
      fields: the NamedTuple fields or dict keys to standardize.
      eps: relative tolerance under which a feature counts as constant (``>= 0``).

    Returns:
      A :class:`Standardized` with the new ``data``, the per-feature ``mean``, ``std``
      and ``constant`` mask (arrays for an array input, else dicts by field), and
      ``apply(other)`` for validation data.

    Raises:
      TypeError, ValueError: naming ``data``, ``fields`` or ``eps``.

    Example:
      >>> import jaxopt_lab as jol
      >>> ds = jol.datasets.digits()
      >>> st = jol.datasets.standardize(ds.train)
      >>> validation = st.apply(ds.validation)  # with the training mean and std
      >>> round(float(abs(st.data.x.mean(0)).max()), 4), int(st.constant["x"].sum())
      (0.0, 3)
    """
    check_nonnegative(
        "eps",
        eps,
        "1e-8",
        fix="Pass a small relative tolerance, e.g. 1e-8 (0: only exactly constant features).",
    )
    eps = float(eps)
    if isinstance(data, Mapping) or _is_namedtuple(data):
        if isinstance(fields, str):
            fields = (fields,)
        if not isinstance(fields, Sequence) or not fields:
            raise ValueError(
                f"`fields` must be a non-empty sequence of field names, got {fields!r}; "
                "e.g. fields=('x',)."
            )
        fields = tuple(fields)
        stats = {f: _statistics(f"data.{f}", _get(data, f, "data"), eps) for f in fields}
        mean = {f: s[0] for f, s in stats.items()}
        std = {f: s[1] for f, s in stats.items()}
        constant = {f: s[2] for f, s in stats.items()}
        values = {
            f: _transform(f"data.{f}", _get(data, f, "data"), mean[f], std[f], constant[f])
            for f in fields
        }
        return Standardized(_replace(data, values), mean, std, constant, fields)
    if isinstance(data, tuple | list) or data is None:
        raise TypeError(
            "`data` must be an array, a NamedTuple (like jol.datasets.digits().train) or a "
            f"dict, got a {type(data).__name__}. For a pair (x, y), pass a dict "
            "{'x': x, 'y': y} or standardize x alone."
        )
    mean, std, constant = _statistics("data", data, eps)
    return Standardized(_transform("data", data, mean, std, constant), mean, std, constant, ())


def _statistics(name: str, value: Any, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = _as_float(name, value).astype(np.float64)
    mean = arr.mean(axis=0)
    std = np.sqrt(np.mean((arr - mean[None]) ** 2, axis=0))
    constant = _constant(mean, std, eps) | np.all(arr == arr[:1], axis=0)
    return mean, std, constant
