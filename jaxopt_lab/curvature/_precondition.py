r"""Stability thresholds of the update rules, and the preconditioned sharpness of adaptive ones.

On a quadratic with Hessian :math:`H`, full-batch gradient descent at rate :math:`\alpha` is
stable while :math:`\lambda_{\max}(H) < 2/\alpha` (lecture 000); heavy-ball momentum
:math:`\beta` while :math:`\lambda_{\max} < (2 + 2\beta)/\alpha`. An adaptive rule divides the
gradient by a diagonal :math:`P` (Adam: :math:`\sqrt{\hat\nu} + \epsilon`), so what meets
the threshold is the *preconditioned* sharpness :math:`\lambda_{\max}(P^{-1} H)`: for Adam
with :math:`\beta_1` the threshold is :math:`(2 + 2\beta_1)/((1 - \beta_1)\alpha)`, 38/lr at
:math:`\beta_1 = 0.9` (Cohen et al. 2022). :math:`P^{-1}H` is similar to the symmetric
:math:`P^{-1/2} H P^{-1/2}`, whose top eigenvalue Lanczos finds matrix-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax._src import transform as optax_transform

from jaxopt_lab.curvature._eigen import Eigen, eigenvalues
from jaxopt_lab.curvature._operator import HessianOperator, as_operator, hvp_operator
from jaxopt_lab.transforms._rule import Preconditioner, Rule, rule_of
from jaxopt_lab.transforms.adaptive import AdagradState, AdamState, RmsState

# the state that holds a diagonal preconditioner, and what it is by default (the
# defaults of the optimizer that makes that state: jol.adam, optax.adam, ...)
_STATES: dict[type, Preconditioner] = {
    AdamState: Preconditioner("adam", 1e-8, 0.999, bias_correction=True),
    optax.ScaleByAdamState: Preconditioner("adam", 1e-8, 0.999, bias_correction=True),
    RmsState: Preconditioner("rms", 1e-6, eps_in_sqrt=True),
    optax.ScaleByRmsState: Preconditioner("rms", 1e-8, eps_in_sqrt=True),
    optax_transform.ScaleByRmsWithCountState: Preconditioner(
        "rms", 1e-8, 0.9, bias_correction=True, eps_in_sqrt=True
    ),
    AdagradState: Preconditioner("adagrad", 1e-7),
    optax.ScaleByRssState: Preconditioner("adagrad", 1e-7, eps_in_sqrt=True),
}
_STATE_NAMES = "Adam, RMSProp or AdaGrad (jaxopt_lab's or optax's)"

# threshold factor c(coefficient): stable while sharpness < c / learning_rate
_FACTORS: dict[str, Callable[[Any], Any]] = {
    "sgd": lambda c: 2.0,
    "momentum": lambda b: 2.0 + 2.0 * b,  # heavy ball (the velocity and accumulate forms)
    "momentum_ema": lambda b: (2.0 + 2.0 * b) / (1.0 - b),
    "nesterov": lambda b: (2.0 + 2.0 * b) / (1.0 + 2.0 * b),
    "adagrad": lambda c: 2.0,
    "rmsprop": lambda m: 2.0 + 2.0 * (0.0 if m is None else m),
    "adam": lambda b1: (2.0 + 2.0 * b1) / (1.0 - b1),
}


def _find_state(opt_state: Any) -> Any:
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda x: type(x) in _STATES)
        if type(s) in _STATES
    ]
    if not found:
        raise ValueError(
            f"`opt_state` holds no diagonal preconditioner (the state of {_STATE_NAMES}); got "
            f"{type(opt_state).__name__}. Pass the state of the adaptive optimizer that "
            "trains (jol.train's result.opt_state, or the callback's opt_state)."
        )
    return found[0]


def _moment(state: Any) -> Any:
    return state.sum_of_squares if hasattr(state, "sum_of_squares") else state.nu


def has_estimate(opt_state: Any) -> jax.Array:
    r"""bool scalar: the state's second moment has seen a gradient (before the first update
    it is zero, and :math:`P` is :math:`\epsilon` alone, not a preconditioner)."""
    leaves = jax.tree.leaves(_moment(_find_state(opt_state)))
    return jnp.any(jnp.stack([jnp.any(jnp.asarray(x) > 0) for x in leaves]))


def diagonal_preconditioner(
    opt_state: Any,
    *,
    optimizer: Any = None,
    preconditioner: Preconditioner | None = None,
) -> Any:
    r"""The diagonal :math:`P` held in an adaptive optimizer's state, as a pytree like params.

    Exactly as the update applies it: Adam :math:`P = \sqrt{\hat\nu + \epsilon_{root}} +
    \epsilon` with :math:`\hat\nu = \nu / (1 - \beta_2^t)` (bias correction, ``t`` the count
    in the state); RMSProp :math:`\sqrt{\nu + \epsilon}` (``eps_in_sqrt``) or
    :math:`\sqrt\nu + \epsilon`; AdaGrad :math:`\epsilon + \sqrt r` (ours) or
    :math:`\sqrt{r + \epsilon}` (optax, which leaves coordinates with :math:`r = 0` unscaled:
    there :math:`P = \infty`).

    Args:
      opt_state: the optimizer state (any nesting of chains; the first Adam, RMSProp or
        AdaGrad state found is used).
      optimizer: the optimizer that made the state: a named optimizer of jaxopt_lab
        carries its ``eps``, ``b2`` and switches; for another (optax's), the defaults of
        the optimizer that makes that kind of state are used (``optax.adam``'s for
        ``ScaleByAdamState``), unless ``preconditioner`` says otherwise.
      preconditioner: a :class:`~jaxopt_lab.transforms._rule.Preconditioner` that
        overrides both.
    """
    state = _find_state(opt_state)
    spec = preconditioner
    if spec is None:
        rule = rule_of(optimizer)
        spec = rule.preconditioner if rule is not None and rule.preconditioner else None
    if spec is None:
        spec = _STATES[type(state)]
    moment = _moment(state)
    count = getattr(state, "count", None)

    def one(v):
        v = jnp.asarray(v)
        dt = v.dtype
        if spec.bias_correction and spec.b2 is not None and count is not None:
            c = 1 - jax.lax.pow(jnp.asarray(spec.b2, dt), jnp.asarray(count, jnp.int32))
            v = jnp.where(count > 0, v / jnp.where(c > 0, c, jnp.ones((), dt)), v)
        eps = jnp.asarray(spec.eps, dt)
        if spec.kind == "adam":
            return jnp.sqrt(v + jnp.asarray(spec.eps_root, dt)) + eps
        if spec.eps_in_sqrt:
            d = jnp.sqrt(v + eps)
            if spec.kind == "adagrad":  # optax's adagrad leaves r = 0 unscaled
                d = jnp.where(v > 0, d, jnp.full_like(d, jnp.inf))
            return d
        return jnp.sqrt(v) + eps

    return jax.tree.map(one, moment)


@jax.tree_util.register_pytree_node_class
class PreconditionedOperator(HessianOperator):
    r""":math:`P^{-1/2} A P^{-1/2}` for a curvature operator :math:`A` and a diagonal :math:`P`:
    the same eigenvalues as :math:`P^{-1} A`. A :class:`HessianOperator` in every respect."""

    def __init__(self, base: HessianOperator, scale: Any):
        self.base, self.scale = base, scale  # scale = P^(-1/2), a pytree like params
        super().__init__(base.loss, base.params, base.extra, base.data, base.batch_size, base.mesh)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"preconditioned {self.base.kind}"

    def tree_flatten(self):
        return (self.base, self.scale), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)

    def with_params(self, params: Any) -> PreconditionedOperator:
        return PreconditionedOperator(self.base.with_params(params), self.scale)

    def _matvec(self, v: Any) -> Any:
        scaled = jax.tree.map(lambda s, x: s * jnp.asarray(x, s.dtype), self.scale, v)
        out = self.base._matvec(scaled)
        return jax.tree.map(lambda s, x: (s * x).astype(x.dtype), self.scale, out)


def precondition(op: HessianOperator, diagonal: Any) -> PreconditionedOperator:
    """``op`` seen through the diagonal preconditioner ``diagonal`` (:math:`P`, like params)."""
    params_leaves = jax.tree.leaves(op.params)
    diag_leaves = jax.tree.leaves(diagonal)
    if len(params_leaves) != len(diag_leaves) or any(
        jnp.shape(a) != jnp.shape(b) for a, b in zip(params_leaves, diag_leaves, strict=False)
    ):
        raise ValueError(
            "the optimizer state's preconditioner is not shaped like the parameters "
            f"({[jnp.shape(x) for x in diag_leaves][:4]} against "
            f"{[jnp.shape(x) for x in params_leaves][:4]}); pass the state of the optimizer "
            "that trains these parameters."
        )
    scale = jax.tree.unflatten(
        jax.tree.structure(op.params),
        [
            jax.lax.rsqrt(jnp.asarray(d, p.dtype))
            for d, p in zip(diag_leaves, params_leaves, strict=True)
        ],
    )
    return PreconditionedOperator(op, scale)


def preconditioned_sharpness(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    opt_state: Any = None,
    *,
    optimizer: Any = None,
    preconditioner: Preconditioner | None = None,
    k: int = 1,
    batch_size: int | None = None,
    batch_norm: str = "running",
    tol: float = 1e-4,
    max_matvecs: int | None = None,
    key: jax.Array | None = None,
) -> Eigen:
    r"""The preconditioned sharpness :math:`\lambda_{\max}(P^{-1} H)` of an adaptive optimizer.

    :math:`P` is the diagonal the optimizer divides the gradient by, read from its state
    (:func:`diagonal_preconditioner`); the eigenvalues are those of
    :math:`P^{-1/2} H P^{-1/2}` by Lanczos. Adam at rate :math:`\alpha` is stable on the
    local quadratic while this stays below :math:`(2 + 2\beta_1)/((1 - \beta_1)\alpha)`
    (:func:`stability_threshold`); Cohen et al. (2022) find it rises to that threshold
    and hovers there (the adaptive edge of stability).

    Args:
      loss_fn_or_op: ``loss_fn(params, batch)``, or a curvature operator
        (:func:`hvp_operator`, :func:`ggn_operator`, ...; then omit ``params``/``data``).
      params: a pytree or an ``nnx.Module``.
      data: a pytree of arrays with a leading example axis, or None.
      opt_state: the optimizer's state at ``params`` (``jol.train``'s ``opt_state``).
      optimizer, preconditioner: see :func:`diagonal_preconditioner`.
      k, batch_size, tol, max_matvecs, key: as :func:`eigenvalues`.
      batch_norm: for an NNX model with batch norm, ``"batch"`` takes the Hessian of the
        training-mode loss (see :func:`sharpness_callback`: use it for such models).

    Returns:
      :class:`Eigen` of :math:`P^{-1/2} H P^{-1/2}` (``values[0]`` is the sharpness; the
      eigenvectors are those of the symmetric form).

    Example:
      >>> import jax.numpy as jnp, jaxopt_lab as jol
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * w**2)
      >>> tx = jol.adam(0.1, eps=0.0)
      >>> w = jnp.ones(2); state = tx.init(w)
      >>> _, state = tx.update(jnp.array([1.0, 100.0]), state, w)  # P = |g| after one step
      >>> eig = jol.curvature.preconditioned_sharpness(f, w, opt_state=state, optimizer=tx)
      >>> round(float(eig.values[0]), 4)  # P^-1 H = diag(1/1, 100/100)
      1.0

    References:
      Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl &
      Gilmer (2022), "Adaptive gradient methods at the edge of stability".
    """
    if opt_state is None:
        raise ValueError(
            "`opt_state` is required: the preconditioner is read from the optimizer's state "
            "(e.g. jol.train's result.opt_state)."
        )
    if isinstance(loss_fn_or_op, HessianOperator):
        op = as_operator(loss_fn_or_op, params, data, batch_size)
    else:
        if params is None:
            raise ValueError("`params` is required when the first argument is a loss function.")
        op = hvp_operator(loss_fn_or_op, params, data, batch_size=batch_size, batch_norm=batch_norm)
    seen = has_estimate(opt_state)
    if not isinstance(seen, jax.core.Tracer) and not bool(seen):
        raise ValueError(
            "`opt_state` holds no second-moment estimate yet (it is the state before the "
            "first update, all zeros): there is no preconditioner to apply. Pass the state "
            "after at least one update."
        )
    diag = diagonal_preconditioner(opt_state, optimizer=optimizer, preconditioner=preconditioner)
    return eigenvalues(precondition(op, diag), k=k, tol=tol, max_matvecs=max_matvecs, key=key)


def stability_threshold(
    optimizer: Any, step: Any = 0, *, learning_rate: Any = None
) -> tuple[jax.Array, bool] | None:
    r"""The largest stable sharpness of ``optimizer`` at ``step``, and whether it bounds the
    preconditioned sharpness.

    ``c / lr`` with ``c`` from the rule: 2 (gradient descent, AdaGrad, RMSProp without
    momentum), :math:`2 + 2\beta` (heavy-ball momentum; RMSProp with momentum),
    :math:`(2 + 2\beta)/(1 - \beta)` (the EMA form of momentum),
    :math:`(2 + 2\beta)/(1 + 2\beta)` (Nesterov), :math:`(2 + 2\beta_1)/(1 - \beta_1)` (Adam:
    38 at 0.9). These are the bounds of full-batch steps on a quadratic (lecture 000;
    Cohen et al. 2021, 2022).

    Args:
      optimizer: a named optimizer of jaxopt_lab (it carries its rule and rate), or None
        (then plain gradient descent at ``learning_rate``).
      step: the step, for a learning-rate schedule.
      learning_rate: overrides the optimizer's rate (a number or schedule).

    Returns:
      ``(threshold, preconditioned)``, or None when the rule has no such bound (sign or
      normalized SGD, AdaDelta, delta-bar-delta, an optimizer of another library without
      ``learning_rate``).
    """
    rule = rule_of(optimizer)
    if rule is None:
        if learning_rate is None:
            return None
        rule = Rule("sgd", learning_rate)
    factor = _FACTORS.get(rule.name)
    if factor is None:
        return None
    lr = rule.learning_rate if learning_rate is None else learning_rate
    lr = lr(step) if callable(lr) else lr
    lr = jnp.asarray(lr, jnp.float32)
    c = factor(rule.coefficient)
    return jnp.asarray(c, jnp.float32) / lr, rule.preconditioner is not None
