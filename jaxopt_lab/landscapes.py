"""Test functions with known critical points.

Each landscape is a :class:`Landscape`: call it on a parameter vector to get the loss,
and read its critical points (location, value, kind) as data. They work as loss
functions for every optimizer and for the curvature tools.

Example:
  >>> import jax.numpy as jnp, jaxopt_lab as jol
  >>> f = jol.landscapes.rosenbrock()
  >>> float(f(jnp.array([1.0, 1.0])))
  0.0
  >>> f.critical_points[0].kind
  'minimum'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

KINDS = ("minimum", "maximum", "saddle", "degenerate")


@dataclasses.dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes."""

    location: tuple[float, ...]  # coordinates
    value: float  # the function's value there
    kind: str  # "minimum", "maximum", "saddle" or "degenerate" (second-derivative test)


@dataclasses.dataclass(frozen=True)
class Landscape:
    """A loss ``fn(w) -> scalar`` on vectors of length ``dim``, with its critical points."""

    name: str
    fn: Callable[[jax.Array], jax.Array]
    dim: int
    critical_points: tuple[CriticalPoint, ...]
    start: tuple[float, ...]  # a customary starting point for demonstrations
    bounds: tuple[tuple[float, float], ...]  # plotting box, one (low, high) per coordinate
    log_contours: bool = False  # contours look better on a log scale (Rosenbrock, Beale)
    gradient_noise: float = 0.0  # std of the N(0, std^2) noise minimize adds to each gradient
    # coordinate (0: exact gradients); fn itself stays the noiseless, expected loss

    def _vector(self, w: jax.typing.ArrayLike) -> jax.Array:
        w = jnp.asarray(w)
        if w.shape != (self.dim,):
            raise ValueError(
                f"`w` must have shape ({self.dim},) for the {self.name} landscape, got "
                f"{w.shape}. Pass a vector such as jnp.array({list(self.start)})."
            )
        return w

    def __call__(self, w: jax.Array, *args) -> jax.Array:
        del args  # lets a landscape stand in for loss_fn(params, batch)
        return self.fn(self._vector(w))

    def stochastic_gradient(self, w: jax.Array, key: jax.Array | None = None) -> jax.Array:
        r"""The gradient oracle of :func:`minimize`: :math:`\nabla f(w) + \sigma \xi`.

        :math:`\xi \sim N(0, I)` drawn with ``key`` and :math:`\sigma` =
        ``gradient_noise``; the exact gradient when ``gradient_noise`` is 0 (``key`` is then
        not needed). :func:`minimize` uses ``jax.random.split(key, steps)[t]`` at step ``t``,
        so a hand-written loop with the same keys follows the same path.
        """
        w = self._vector(w)
        g = jax.grad(self.fn)(w)
        if not self.gradient_noise:
            return g
        if key is None:
            raise ValueError(
                f"`key` is required: the {self.name} landscape adds gradient noise of std "
                f"{self.gradient_noise}. Pass e.g. key=jax.random.key(0)."
            )
        return g + _noise(self.gradient_noise, key, g)

    @property
    def minima(self) -> tuple[CriticalPoint, ...]:
        """The critical points that are minima."""
        return tuple(c for c in self.critical_points if c.kind == "minimum")


def quadratic(
    eigenvalues: Sequence[float] | None = None,
    *,
    matrix: jax.typing.ArrayLike | None = None,
    center: Sequence[float] | None = None,
) -> Landscape:
    r"""The quadratic :math:`L(w) = \tfrac12 (w - c)^\top H (w - c)`.

    Give either the eigenvalues of a diagonal :math:`H` or the symmetric matrix itself.
    Lecture 002's ill-conditioned bowl :math:`0.1 w_1^2 + 2 w_2^2` is
    ``quadratic([0.2, 4.0])``. Gradient descent on it converges for
    :math:`\alpha < 2/\lambda_{max}` (lecture 000).

    Args:
      eigenvalues: the diagonal of :math:`H`.
      matrix: a symmetric :math:`H` (instead of ``eigenvalues``).
      center: :math:`c`, the critical point (default 0).

    Returns:
      A :class:`Landscape` whose single critical point is classified from the signs
      of the eigenvalues.
    """
    if (eigenvalues is None) == (matrix is None):
        raise ValueError("Pass exactly one of `eigenvalues` or `matrix` to quadratic().")
    h = np.diag(np.asarray(eigenvalues, float)) if matrix is None else np.asarray(matrix, float)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or not np.allclose(h, h.T):
        raise ValueError(f"`matrix` must be a symmetric square matrix, got shape {h.shape}.")
    dim = h.shape[0]
    c = np.zeros(dim) if center is None else np.asarray(center, float)
    if c.shape != (dim,):
        raise ValueError(f"`center` must have length {dim}, got shape {c.shape}.")
    lam = np.linalg.eigvalsh(h)
    tol = 1e-12 * max(1.0, float(np.abs(lam).max()))
    if np.any(np.abs(lam) <= tol):
        kind = "degenerate"
    elif np.all(lam > 0):
        kind = "minimum"
    elif np.all(lam < 0):
        kind = "maximum"
    else:
        kind = "saddle"
    h32, c32 = jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32)

    def fn(w):
        d = w - c32.astype(w.dtype)
        return 0.5 * d @ (h32.astype(w.dtype) @ d)

    start = tuple(float(x) for x in c + np.where(np.arange(dim) % 2 == 0, -3.0, 1.0))
    bounds = tuple((float(x) - 4.0, float(x) + 4.0) for x in c)
    return Landscape("quadratic", fn, dim, (CriticalPoint(tuple(c), 0.0, kind),), start, bounds)


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    r"""Rosenbrock's valley :math:`(a - x)^2 + b (y - x^2)^2`; minimum 0 at :math:`(a, a^2)`.

    At (1, 1) with the defaults the Hessian is [[802, -400], [-400, 200]], eigenvalues
    1001.6006 and 0.39936 (condition number about 2508).
    """

    def fn(w):
        x, y = w[0], w[1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    minimum = CriticalPoint((a, a * a), 0.0, "minimum")
    return Landscape("rosenbrock", fn, 2, (minimum,), (-1.5, 2.0), ((-2.0, 2.0), (-1.0, 3.0)), True)


def beale() -> Landscape:
    r"""Beale's function; global minimum 0 at (3, 0.5), a saddle at (0, 1) (value 14.203125).

    :math:`(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`.
    """

    def fn(w):
        x, y = w[0], w[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    points = (
        CriticalPoint((3.0, 0.5), 0.0, "minimum"),
        CriticalPoint((0.0, 1.0), 14.203125, "saddle"),
    )
    return Landscape("beale", fn, 2, points, (1.0, 1.5), ((-4.5, 4.5), (-4.5, 4.5)), True)


_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286170),
    (3.584428340330492, -1.848126526964404),
)
_HIMMELBLAU_MAXIMUM = (-0.270844590667, -0.923038556480)
_HIMMELBLAU_SADDLES = (
    (0.086677504555, 2.884254701175),
    (-3.073025750764, -0.081353044288),
    (3.385154183607, 0.073851879838),
    (-0.127961346731, -1.953714980244),
)


def himmelblau() -> Landscape:
    r"""Himmelblau's function :math:`(x^2 + y - 11)^2 + (x + y^2 - 7)^2`.

    Four minima (value 0), one local maximum and four saddles.
    """

    def fn(w):
        x, y = w[0], w[1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    def value(p):
        x, y = p
        return float((x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2)

    points = (
        *(CriticalPoint(p, 0.0, "minimum") for p in _HIMMELBLAU_MINIMA),
        CriticalPoint(_HIMMELBLAU_MAXIMUM, value(_HIMMELBLAU_MAXIMUM), "maximum"),
        *(CriticalPoint(p, value(p), "saddle") for p in _HIMMELBLAU_SADDLES),
    )
    return Landscape("himmelblau", fn, 2, points, (0.0, 0.0), ((-5.0, 5.0), (-5.0, 5.0)), True)


def saddle() -> Landscape:
    """The saddle :math:`x^2 - y^2`: Hessian diag(2, -2) at the origin (lecture 000)."""
    return Landscape(
        "saddle",
        lambda w: w[0] ** 2 - w[1] ** 2,
        2,
        (CriticalPoint((0.0, 0.0), 0.0, "saddle"),),
        (1.0, 1e-3),
        ((-2.0, 2.0), (-2.0, 2.0)),
    )


def monkey_saddle() -> Landscape:
    """The monkey saddle :math:`x^3 - 3xy^2`: zero Hessian at the origin, so degenerate."""
    return Landscape(
        "monkey_saddle",
        lambda w: w[0] ** 3 - 3 * w[0] * w[1] ** 2,
        2,
        (CriticalPoint((0.0, 0.0), 0.0, "degenerate"),),
        (0.5, 0.5),
        ((-1.5, 1.5), (-1.5, 1.5)),
    )


def negative_bowl() -> Landscape:
    """:math:`-(x^2 + y^2)`: a maximum at the origin."""
    return Landscape(
        "negative_bowl",
        lambda w: -(w[0] ** 2 + w[1] ** 2),
        2,
        (CriticalPoint((0.0, 0.0), 0.0, "maximum"),),
        (0.1, 0.1),
        ((-2.0, 2.0), (-2.0, 2.0)),
    )


def two_layer_linear() -> Landscape:
    r"""Lecture 001's 1-1-1 linear network :math:`L = (1 - w_1 w_2)^2`.

    Its minima form the hyperbola :math:`w_1 w_2 = 1` (listed here at a few points, each
    with a zero Hessian eigenvalue along the curve, so degenerate by the second-derivative
    test although they are global minima); the origin is a saddle (Hessian [[0, -2],
    [-2, 0]]).
    """
    points = (
        CriticalPoint((0.0, 0.0), 1.0, "saddle"),
        *(CriticalPoint((s, 1.0 / s), 0.0, "degenerate") for s in (1.0, 2.0, -0.5)),
    )
    return Landscape(
        "two_layer_linear",
        lambda w: (1 - w[0] * w[1]) ** 2,
        2,
        points,
        (0.2, -1.5),
        ((-2.5, 2.5), (-2.5, 2.5)),
    )


def _noise(std: float, key: jax.Array, g: jax.Array) -> jax.Array:
    return std * jax.random.normal(key, g.shape, g.dtype)


def noisy(landscape: Landscape | str, std: float) -> Landscape:
    r"""``landscape`` whose gradients, in :func:`minimize`, carry Gaussian noise of std ``std``.

    The gradient oracle becomes :math:`\hat g = \nabla f(w) + \sigma \xi`,
    :math:`\xi \sim N(0, I)` fresh at every step: SGD seen as "GD with noise", whose
    expected step is the gradient step (LeCun (with Defazio), "Optimization for Deep
    Learning", lecture 001). The loss ``fn``, the critical points and the recorded
    ``losses`` stay those of the noiseless function (the expected loss); run it with
    ``minimize(..., key=...)`` or draw gradients with :meth:`Landscape.stochastic_gradient`.
    Gradients taken by ``jax.grad`` of the landscape itself (e.g. in ``jol.train``) are
    exact.

    Args:
      landscape: any :class:`Landscape` (or its name in :data:`REGISTRY`).
      std: :math:`\sigma \ge 0`, per coordinate.

    Returns:
      A :class:`Landscape` named ``"noisy_<name>"`` with ``gradient_noise = std``.
    """
    from jaxopt_lab import _validation

    if isinstance(landscape, str):
        landscape = get(landscape)
    if not isinstance(landscape, Landscape):
        raise TypeError(
            f"`landscape` must be a jol.landscapes.Landscape, got {type(landscape).__name__}."
        )
    _validation.check_nonnegative(
        "std", std, "1.0", "Pass the noise's standard deviation, e.g. std=1.0 (0: exact)."
    )
    return dataclasses.replace(landscape, name=f"noisy_{landscape.name}", gradient_noise=float(std))


def noisy_quadratic(
    std: float = 1.0,
    eigenvalues: Sequence[float] = (0.2, 4.0),
    *,
    center: Sequence[float] | None = None,
) -> Landscape:
    r"""A quadratic whose gradient oracle adds :math:`N(0, \sigma^2 I)` noise (lecture 001).

    ``noisy(quadratic(eigenvalues, center=center), std)``; the default bowl is lecture
    002's :math:`0.1 w_1^2 + 2 w_2^2`. Constant-rate SGD does not converge on it but
    fluctuates around the minimum (LeCun (with Defazio), lecture 001: "much faster but
    fluctuates near the minimum"): along an eigenvector with eigenvalue :math:`\lambda`,
    :math:`w_{k+1} = (1 - \alpha\lambda) w_k - \alpha\sigma\xi_k`, whose stationary
    variance is

    .. math::
      \operatorname{Var} w = \frac{\alpha \sigma^2}{\lambda (2 - \alpha\lambda)},

    growing with the rate :math:`\alpha`. The workarounds of Grosse & Ba's recap table
    (lecture 000) remove it: decay :math:`\alpha` (Robbins-Monro rates such as
    ``jol.schedules.inverse_time``), or average the iterates (``jol.polyak_averaging``;
    lecture 001 adds that SGD with momentum needs no averaging, in theory).

    Not in :data:`REGISTRY`: :func:`minimize` needs a ``key`` for it.

    Args:
      std: :math:`\sigma \ge 0`, the noise's standard deviation per coordinate.
      eigenvalues: the diagonal of the Hessian.
      center: the minimum (default 0).

    Returns:
      A :class:`Landscape` named ``"noisy_quadratic"`` with ``gradient_noise = std``.

    Example:
      >>> import jax, jaxopt_lab as jol
      >>> f = jol.landscapes.noisy_quadratic(std=1.0)
      >>> run = jol.landscapes.minimize(jol.sgd(0.1), f, 500, key=jax.random.key(0))
      >>> bool(run.losses[-1] > 1e-3)  # constant rate: still fluctuating
      True

    References:
      LeCun (with Defazio), "Optimization for Deep Learning" (lecture 001), "Stochastic
      Gradient: much faster but fluctuates near the minimum"; Grosse & Ba, "CSC421/2516
      Lectures 7–8: Optimization" (lecture 000), recap table, fluctuations.
    """
    q = noisy(quadratic(eigenvalues, center=center), std)
    return dataclasses.replace(q, name="noisy_quadratic")


# the tilt beyond which the double well has a single critical point: |a| < 8 / (3 sqrt 3)
_MAX_TILT = 8.0 / (3.0 * np.sqrt(3.0))


def tilted_double_well(tilt: float = 0.5) -> Landscape:
    r"""A local and a global minimum with a saddle between them (lecture 004).

    .. math::
      f(x, y) = (x^2 - 1)^2 + a x + y^2 .

    Its critical points have :math:`y = 0` and :math:`x` a root of
    :math:`\partial_x f = 4x^3 - 4x + a`, i.e. of :math:`x^3 - x + a/4 = 0`, computed
    exactly by the trigonometric formula for three real roots (:math:`|a| < 8/(3\sqrt3)`):

    .. math::
      x_k = \tfrac{2}{\sqrt3}\cos\left(\tfrac13\arccos\left(-\tfrac{3\sqrt3}{8}a\right)
      - \tfrac{2\pi k}{3}\right), \quad k = 0, 1, 2 .

    The Hessian is :math:`\operatorname{diag}(12x^2 - 4, 2)`: the outer roots are minima,
    the middle one a saddle. For :math:`a > 0` the left well is the global minimum and the
    right one a local minimum; gradient descent ends in whichever well it starts in
    (the side of the saddle's :math:`x`). With the default :math:`a = 0.5`: global minimum
    near (-1.057, 0), value -0.515; local minimum near (0.930, 0), value 0.483; saddle
    near (0.127, 0), value 1.032.

    Args:
      tilt: :math:`a`, with :math:`|a| < 8/(3\sqrt 3) \approx 1.54`.

    Returns:
      A :class:`Landscape`; ``critical_points`` lists the lower minimum, the other
      minimum, then the saddle. Its start (1.5, 1.0) lies in the local minimum's basin.

    References:
      Eskandari, "Deep Learning (Optimization)" (lecture 004), approximate minimization
      (local minima) and the second-derivative test.
    """
    from jaxopt_lab import _validation

    arr = _validation.real_scalar("tilt", tilt, example="0.5")
    if arr is None or not (np.isfinite(arr) and abs(float(arr)) < _MAX_TILT):
        raise ValueError(
            f"`tilt` must be a number with |tilt| < 8/(3 sqrt 3) = {_MAX_TILT:.4f}, got "
            f"{tilt!r}; beyond it one well disappears. Pass e.g. tilt=0.5."
        )
    a = float(arr)
    phase = np.arccos(-3.0 * np.sqrt(3.0) * a / 8.0) / 3.0
    roots = sorted(2.0 / np.sqrt(3.0) * np.cos(phase - 2.0 * np.pi * k / 3.0) for k in range(3))

    def value(x: float) -> float:
        return float((x * x - 1.0) ** 2 + a * x)

    left, middle, right = (float(r) for r in roots)
    low, high = (left, right) if value(left) <= value(right) else (right, left)
    points = (
        CriticalPoint((low, 0.0), value(low), "minimum"),
        CriticalPoint((high, 0.0), value(high), "minimum"),
        CriticalPoint((middle, 0.0), value(middle), "saddle"),
    )

    def fn(w):
        x, y = w[0], w[1]
        return (x**2 - 1) ** 2 + a * x + y**2

    return Landscape("tilted_double_well", fn, 2, points, (1.5, 1.0), ((-2.0, 2.0), (-1.5, 1.5)))


# a sigmoid unit y = sigma(w x + b) fitted by least squares to a teacher (w, b) = (1, 0.5)
_PLATEAU_X = np.array([-2.0, -1.0, 1.0, 2.0])
_PLATEAU_TEACHER = (1.0, 0.5)
_PLATEAU_Y = 1.0 / (1.0 + np.exp(-(_PLATEAU_TEACHER[0] * _PLATEAU_X + _PLATEAU_TEACHER[1])))


def plateau() -> Landscape:
    r"""A plateau: the loss of one saturated sigmoid unit (lecture 000).

    .. math::
      L(w, b) = \frac14 \sum_{i=1}^4 \left(\sigma(w x_i + b) - y_i\right)^2,
      \qquad x = (-2, -1, 1, 2), \quad y_i = \sigma(x_i + 0.5),

    "logistic activations & least squares", Grosse & Ba's example of a plateau. The
    gradient is :math:`\frac12 \sum_i (\sigma(z_i) - y_i)\,\sigma'(z_i)\,(x_i, 1)`, and
    :math:`\sigma'(z) \approx e^{-|z|}` for a saturated unit: from the start
    :math:`(w, b) = (8, 0)` (pre-activations :math:`\pm 8, \pm 16`) the gradient norm is
    about 1e-4 while the loss is 0.054, and it stays below 1e-3 for every :math:`w \ge 6`
    near :math:`b = 0`. Gradient descent barely moves there; a normalized or sign step,
    whose length does not depend on the gradient's size (Congeduti, lecture 002,
    normalized gradients), walks off the plateau.

    The one critical point listed is the global minimum at the teacher (1, 0.5), value 0,
    with Hessian eigenvalues about 0.033 and 0.112. Far out in saturation the gradient
    tends to zero without vanishing.

    Returns:
      A :class:`Landscape` with the unit's ``(w, b)`` as its two coordinates.

    References:
      Grosse & Ba, "CSC421/2516 Lectures 7–8: Optimization" (lecture 000), plateaux and
      saturated units; Congeduti, "Optimization" (lecture 002), normalizing gradients.
    """

    def fn(v):
        x = jnp.asarray(_PLATEAU_X, v.dtype)
        y = jnp.asarray(_PLATEAU_Y, v.dtype)
        return jnp.mean((jax.nn.sigmoid(v[0] * x + v[1]) - y) ** 2)

    minimum = CriticalPoint(_PLATEAU_TEACHER, 0.0, "minimum")
    return Landscape("plateau", fn, 2, (minimum,), (8.0, 0.0), ((-2.0, 10.0), (-4.0, 6.0)))


def lecture_quadratic() -> Landscape:
    """Lecture 002's ill-conditioned bowl :math:`0.1 w_1^2 + 2 w_2^2`.

    The same function as ``quadratic([0.2, 4.0])``, started at (-3, 1).
    """
    q = quadratic([0.2, 4.0])
    return dataclasses.replace(q, name="lecture_quadratic", start=(-3.0, 1.0))


REGISTRY: dict[str, Callable[[], Landscape]] = {
    "lecture_quadratic": lecture_quadratic,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "saddle": saddle,
    "monkey_saddle": monkey_saddle,
    "negative_bowl": negative_bowl,
    "two_layer_linear": two_layer_linear,
    "tilted_double_well": tilted_double_well,
    "plateau": plateau,
}
"""Landscapes by name (no-argument constructors), for the command line and plots.

:func:`noisy_quadratic` (and any :func:`noisy` landscape) is left out: :func:`minimize`
needs a ``key`` for its gradient noise.
"""


def get(name: str) -> Landscape:
    """Returns the landscape called ``name`` (see :data:`REGISTRY`)."""
    if name not in REGISTRY:
        raise ValueError(f"`name` must be one of {sorted(REGISTRY)}, got {name!r}.")
    return REGISTRY[name]()


class Minimized(NamedTuple):
    """The outcome of :func:`minimize`: every iterate and its loss, the start first."""

    path: np.ndarray  # (steps + 1, dim) iterates; path[0] is the start
    losses: np.ndarray  # (steps + 1,) loss at each iterate


def minimize(
    optimizer: optax.GradientTransformation,
    landscape: Landscape | str,
    steps: int,
    *,
    start: Sequence[float] | None = None,
    key: jax.Array | None = None,
) -> Minimized:
    """Runs ``optimizer`` on ``landscape`` for ``steps`` updates from its start.

    One compiled ``lax.scan`` in float32; a run that overflows keeps going with
    non-finite values (see ``losses``), it never raises. On a landscape with
    ``gradient_noise`` (:func:`noisy`, :func:`noisy_quadratic`) every gradient is
    :meth:`Landscape.stochastic_gradient`, with ``jax.random.split(key, steps)[t]`` at
    step ``t``; ``losses`` are the noiseless loss at the iterates.

    Args:
      optimizer: any optax gradient transformation (``jol.adam(0.1)``, ``optax.sgd(...)``).
        Its ``update`` also gets ``value``, ``grad`` and ``value_fn`` (the loss, noise-free),
        as in ``jol.train``, so ``jol.newton``, ``optax.lbfgs()`` and ``jol.nonlinear_cg()``
        run here too.
      landscape: a :class:`Landscape` or its name in :data:`REGISTRY`.
      steps: the number of updates, >= 0.
      start: the first iterate (default: ``landscape.start``).
      key: a PRNG key for the gradient noise; required when ``landscape.gradient_noise``
        is > 0, unused otherwise.

    Returns:
      ``Minimized(path, losses)``: ``path`` of shape ``(steps + 1, dim)`` and ``losses``
      of shape ``(steps + 1,)``, the start first.

    Example:
      >>> import jaxopt_lab as jol
      >>> path, losses = jol.landscapes.minimize(jol.sgd(0.45), "lecture_quadratic", 100)
      >>> path.shape, bool(losses[-1] < 1e-6)
      ((101, 2), True)
    """
    from jaxopt_lab import _validation

    if isinstance(landscape, str):
        landscape = get(landscape)
    if not isinstance(landscape, Landscape):
        raise TypeError(
            f"`landscape` must be a jol.landscapes.Landscape or one of {sorted(REGISTRY)}, "
            f"got {type(landscape).__name__}."
        )
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "`optimizer` must be an optax.GradientTransformation (e.g. jol.adam(0.1)), "
            f"got {type(optimizer).__name__}."
        )
    steps = _validation.check_count(steps, "steps", minimum=0)
    w0 = jnp.asarray(landscape.start if start is None else start, jnp.float32)
    if w0.shape != (landscape.dim,):
        raise ValueError(
            f"`start` must have {landscape.dim} coordinates for {landscape.name}, got "
            f"shape {w0.shape}; e.g. start={list(landscape.start)}."
        )
    noise = landscape.gradient_noise
    _validation.check_key(key, "key", fix=" (it seeds the gradient noise)")
    if noise and key is None:
        raise ValueError(
            f"`key` is required: the {landscape.name} landscape adds gradient noise of std "
            f"{noise}. Pass e.g. minimize(..., key=jax.random.key(0))."
        )
    keys = jax.random.split(key, steps) if noise else None
    path, losses = _minimize(optimizer, landscape.fn, steps, w0, noise, keys)
    return Minimized(np.asarray(path), np.asarray(losses))


def _minimize(
    optimizer: Any,
    fn: Callable,
    steps: int,
    w0: jax.Array,
    noise: float = 0.0,
    keys: jax.Array | None = None,
):
    value_and_grad = jax.value_and_grad(fn)
    # as jol.train does: the loss goes along, so Newton, L-BFGS and line searches run here
    optimizer = optax.with_extra_args_support(optimizer)

    def body(carry, key):
        w, state = carry
        loss, g = value_and_grad(w)
        if noise:
            g = g + _noise(noise, key, g)
        u, state = optimizer.update(g, state, w, value=loss, grad=g, value_fn=fn)
        return (optax.apply_updates(w, u), state), (w, loss)

    @jax.jit
    def go(w0, keys):
        init = (w0, optimizer.init(w0))
        (w, _), (ws, losses) = jax.lax.scan(body, init, keys, length=steps)
        return jnp.concatenate([ws, w[None]]), jnp.append(losses, fn(w))

    return go(w0, keys)
