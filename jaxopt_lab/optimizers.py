"""Named optimizers: each is only a ``chain`` of building blocks.

Every optimizer here returns an ``optax.GradientTransformationExtraArgs`` that works in
``optax.chain``, ``optax.inject_hyperparams``, ``flax.nnx.Optimizer`` and under
``jit``/``vmap``. Hyperparameters may be traced arrays (``vmap`` over a grid needs no
``inject_hyperparams``); concrete values are checked at construction and raise a
``ValueError`` (out of range, NaN or infinite, not a scalar) or a ``TypeError`` (``None``,
a list, a bool, a string) naming the argument; traced ones cannot be checked. Parameters
must be floating point (``init`` refuses others, naming the leaf), and ``update`` refuses
gradients whose tree structure or leaf shapes differ from the parameters'. Any learning
rate may be a schedule (ours in :mod:`jaxopt_lab.schedules` or optax's). For bfloat16 and
float16 parameters the adaptive methods keep their moments in float32.
"""

from __future__ import annotations

import jax
import optax

from jaxopt_lab._types import ScalarOrSchedule
from jaxopt_lab._validation import check_choice
from jaxopt_lab.transforms._common import scale_by_learning_rate
from jaxopt_lab.transforms._rule import Preconditioner, Rule, tag
from jaxopt_lab.transforms.adaptive import (
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_rms,
)
from jaxopt_lab.transforms.conjugate import scale_by_conjugate_gradient, zoom_linesearch
from jaxopt_lab.transforms.delta_bar_delta import scale_by_delta_bar_delta
from jaxopt_lab.transforms.momentum import (
    MomentumOrSchedule,
    check_momentum,
    scale_by_ema,
    scale_by_nesterov_lookahead,
    scale_by_trace,
)
from jaxopt_lab.transforms.newton import scale_by_newton
from jaxopt_lab.transforms.normalized import scale_by_global_norm, scale_by_sign

_GTX = optax.GradientTransformationExtraArgs


def _rule(name: str, learning_rate, beta, preconditioner: Preconditioner | None = None) -> Rule:
    """The :class:`Rule` of a momentum rule; a scheduled ``beta`` gets its own name, so
    ``jol.curvature.stability_threshold`` (whose bounds assume a constant coefficient)
    answers None rather than misreading the schedule as a number."""
    if callable(beta):
        name = f"{name}_scheduled"
    return Rule(name, learning_rate, beta, preconditioner)


def sgd(learning_rate: ScalarOrSchedule) -> _GTX:
    r"""Stochastic gradient descent :math:`\theta \leftarrow \theta - \epsilon_k \hat g`.

    Args:
      learning_rate: :math:`\epsilon_k`, a scalar or a schedule.

    Example:
      >>> import jax.numpy as jnp, jaxopt_lab as jol
      >>> tx = jol.sgd(0.1)
      >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.array([1.0])))
      >>> u
      Array([-0.2], dtype=float32)

    References:
      Lecture 004 (Eskandari), algorithm 8.1; lecture 003, "Basic Algorithms".
    """
    return tag(optax.chain(scale_by_learning_rate(learning_rate)), Rule("sgd", learning_rate))


def momentum(
    learning_rate: ScalarOrSchedule, beta: MomentumOrSchedule = 0.9, *, form: str = "velocity"
) -> _GTX:
    r"""SGD with momentum in one of the lectures' three forms.

    * ``"velocity"`` (Grosse & Ba, lecture 000; Goodfellow et al. ch. 8 as taught by
      Favaro, lecture 003, and Eskandari, lecture 004: alg. 8.2):
      :math:`p \leftarrow \mu p - \alpha g,\; \theta \leftarrow \theta + p`;
    * ``"ema"`` (Congeduti, lecture 002): :math:`v \leftarrow \beta v + (1-\beta) g,\;
      w \leftarrow w - \alpha v`;
    * ``"accumulate"`` (LeCun & Defazio, lecture 001, heavy ball):
      :math:`p \leftarrow \beta p + g,\; w \leftarrow w - \alpha p`; equals
      ``optax.sgd(lr, momentum=beta)``.

    Velocity and accumulate agree for a constant rate and differ under a schedule;
    the EMA form takes steps :math:`1-\beta` times smaller for the same :math:`\alpha`.
    Under a constant gradient :math:`g` the step tends to :math:`-\alpha g/(1-\beta)`
    in the velocity and accumulate forms and to :math:`-\alpha g` in the EMA form.

    ``beta`` may be a schedule ``count -> beta`` (lecture 001's :math:`\hat\beta_k`), read
    at the number of updates so far, e.g.
    :func:`jaxopt_lab.transforms.momentum.nesterov_momentum_schedule`.

    Args:
      learning_rate: :math:`\alpha`, a scalar or a schedule.
      beta: the momentum coefficient :math:`\mu = \beta \in [0, 1)`, or a schedule.
      form: ``"velocity"``, ``"ema"`` or ``"accumulate"``. Static.

    Example:
      >>> import jaxopt_lab as jol, optax
      >>> tx = jol.momentum(0.01, beta=0.9, form="accumulate")  # == optax.sgd(0.01, 0.9)

    References:
      Grosse & Ba, CSC421 lectures 7-8 (lecture 000), "Momentum"; LeCun & Defazio,
      "Optimization for Deep Learning" (lecture 001), "Momentum acceleration methods";
      Congeduti, "Optimization" (lecture 002), "Momentum"; Goodfellow et al. ch. 8 as
      taught by Favaro (lecture 003), "SGD with Momentum".
    """
    check_choice("form", form, ("velocity", "ema", "accumulate"))
    if form == "velocity":
        tx = optax.chain(scale_by_learning_rate(learning_rate), scale_by_trace(beta))
    elif form == "ema":
        tx = optax.chain(scale_by_ema(beta), scale_by_learning_rate(learning_rate))
    else:
        tx = optax.chain(scale_by_trace(beta), scale_by_learning_rate(learning_rate))
    name = "momentum_ema" if form == "ema" else "momentum"  # velocity = accumulate (heavy ball)
    return tag(tx, _rule(name, learning_rate, beta))


def nesterov(
    learning_rate: ScalarOrSchedule, beta: MomentumOrSchedule = 0.9, *, form: str = "accumulate"
) -> _GTX:
    r"""Nesterov's momentum, in lecture 001's form (default) or lecture 003's look-ahead form.

    ``form="accumulate"`` (LeCun & Defazio, lecture 001), on a variable :math:`w`:

    .. math::
      p_{k+1} = \beta p_k + \nabla f(w_k), \qquad
      w_{k+1} = w_k - \gamma\,(\nabla f(w_k) + \beta p_{k+1}).

    This equals ``optax.sgd(lr, momentum=beta, nesterov=True)`` and
    ``torch.optim.SGD(nesterov=True)``, and needs only the gradient at the iterate.

    ``form="lookahead"`` (Goodfellow et al. ch. 8 as taught by Favaro, lecture 003;
    Sutskever et al., 2013), on lecture 003's :math:`\theta`:

    .. math::
      v \leftarrow \beta v - \epsilon \nabla L(\theta + \beta v), \qquad
      \theta \leftarrow \theta + v.

    The gradient at the look-ahead point comes from the loss, so ``update`` needs
    ``params`` and ``value_fn`` (``tx.update(grads, state, params, value_fn=loss)``;
    ``jol.train`` passes it; the incoming gradient is not used) and a step costs one
    more gradient evaluation. See
    :func:`jaxopt_lab.transforms.momentum.scale_by_nesterov_lookahead`.

    How they relate: the default form runs lecture 003's method in the shifted variable
    :math:`w_k = \theta_k + \beta v_k` (the look-ahead point), with :math:`v = -\gamma p`
    and :math:`\gamma = \epsilon`. Substituting gives
    :math:`w_{k+1} = w_k + \beta v_{k+1} - \epsilon\nabla L(w_k)` and
    :math:`v_{k+1} = \beta v_k - \epsilon \nabla L(w_k)`, which is the default form.
    Conversely :math:`\theta_k = w_k - \beta v_k = w_k + \gamma\beta p_k`, and since
    :math:`v_k = \theta_k - \theta_{k-1}`, :math:`w_k = \theta_k + \beta(\theta_k -
    \theta_{k-1})`: from the same start (:math:`v_0 = p_0 = 0`, so :math:`w_0 =
    \theta_0`) the default form's losses are the losses at lecture 003's look-ahead
    points. The correspondence is exact for a constant rate and coefficient. Under
    schedules each form follows its lecture as written: lecture 001 uses
    :math:`\hat\beta_k` in both lines, whereas the substitution would put
    :math:`\beta_{k+1}` in the second, and a rate schedule scales :math:`p` and :math:`v`
    differently (as for momentum's velocity and accumulate forms).

    Args:
      learning_rate: :math:`\gamma = \epsilon`, a scalar or a schedule.
      beta: :math:`\beta \in [0, 1)`, or a schedule ``count -> beta`` such as Nesterov's
        :math:`(k-1)/(k+2)`,
        :func:`jaxopt_lab.transforms.momentum.nesterov_momentum_schedule`.
      form: ``"accumulate"`` (lecture 001, the default) or ``"lookahead"`` (lecture 003).
        Static, keyword-only.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxopt_lab as jol
      >>> loss = lambda w: 0.5 * jnp.sum(w**2)
      >>> tx, w = jol.nesterov(0.1, 0.9, form="lookahead"), jnp.array([1.0])
      >>> u, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, value_fn=loss)
      >>> u  # v = 0.9 * 0 - 0.1 * grad L(1 + 0.9 * 0)
      Array([-0.1], dtype=float32)

    References:
      LeCun & Defazio, "Optimization for Deep Learning" (lecture 001), "Momentum
      accelerates"; Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Nesterov
      Momentum"; Sutskever, Martens, Dahl & Hinton, 2013; Bengio, Boulanger-Lewandowski
      & Pascanu, 2013 (the shifted form).
    """
    check_choice("form", form, ("accumulate", "lookahead"))
    if form == "lookahead":
        tx = optax.chain(scale_by_nesterov_lookahead(learning_rate, beta))
    else:
        tx = optax.chain(scale_by_trace(beta, nesterov=True), scale_by_learning_rate(learning_rate))
    return tag(tx, _rule("nesterov", learning_rate, beta))


def adagrad(learning_rate: ScalarOrSchedule, eps: jax.typing.ArrayLike = 1e-7) -> _GTX:
    r"""AdaGrad: :math:`r \leftarrow r + g\odot g,\;
    \Delta\theta = -\frac{\epsilon}{\delta + \sqrt r} \odot g` (lectures 003, 004).

    Args:
      learning_rate: :math:`\epsilon`, a scalar or a schedule.
      eps: :math:`\delta`, default :math:`10^{-7}` as in the lectures.

    References:
      Lecture 003 (Favaro), "AdaGrad"; lecture 004, algorithm 8.4; Duchi et al., 2011.
    """
    tx = optax.chain(scale_by_adagrad(eps), scale_by_learning_rate(learning_rate))
    return tag(tx, Rule("adagrad", learning_rate, None, Preconditioner("adagrad", eps)))


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-6,
    *,
    eps_in_sqrt: bool = True,
    momentum: MomentumOrSchedule | None = None,
) -> _GTX:
    r"""RMSProp: :math:`r \leftarrow \rho r + (1-\rho) g\odot g`, then scaled descent.

    ``eps_in_sqrt=True`` (Goodfellow et al. ch. 8 as taught by Favaro, lecture 003, and
    Eskandari, lecture 004: alg. 8.5; also Grosse & Ba, lecture 000):
    :math:`\Delta\theta = -\epsilon g/\sqrt{\delta+r}`; ``False`` (LeCun & Defazio,
    lecture 001): :math:`-\gamma g / (\sqrt{r} + \epsilon)`.

    ``decay`` is :math:`\rho`, the weight of the old average. Grosse & Ba (lecture 000)
    write :math:`s_j \leftarrow (1-\gamma) s_j + \gamma\, (\partial J/\partial\theta_j)^2`,
    with :math:`\gamma` the weight of the new squared gradient: their :math:`\gamma` is
    ``1 - decay`` (``decay = 1 - gamma``; e.g. :math:`\gamma = 0.1` is ``decay=0.9``).
    Lecture 001's :math:`\alpha` in :math:`v \leftarrow \alpha v + (1-\alpha) g^2` is
    ``decay`` itself.

    With ``momentum`` the RMS-scaled step feeds a heavy-ball velocity,
    :math:`v \leftarrow \mu v - \epsilon g/\sqrt{\delta + r},\; \theta \leftarrow \theta + v`,
    as ``optax.rmsprop(momentum=...)`` and ``torch.optim.RMSprop(momentum=...)`` do. This
    is not Goodfellow's Algorithm 8.6 ("RMSProp with Nesterov momentum"), which takes
    the gradient at the interim point :math:`\theta + \mu v` (and which the lectures do
    not show: lecture 003 lists "RMSProp+Momentum" among the popular choices without a
    formula, lecture 004 stops at alg. 8.5).

    Args:
      learning_rate: a scalar or a schedule.
      decay: :math:`\rho \in [0, 1)` (Grosse & Ba's :math:`1 - \gamma`).
      eps: :math:`\delta \ge 0`, default :math:`10^{-6}` as in Goodfellow alg. 8.5.
      eps_in_sqrt: where ``eps`` goes. Static.
      momentum: optional :math:`\mu \in [0, 1)` of the heavy-ball velocity, or a schedule
        ``count -> mu``. ``None`` (static) for none.

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "RMSProp"; Eskandari
      (lecture 004), algorithm 8.5; Grosse & Ba, CSC421 lectures 7-8 (lecture 000),
      "RMSprop and Adam"; LeCun & Defazio (lecture 001), "RMSprop"; Tieleman & Hinton,
      2012.
    """
    if momentum is not None:  # checked under its own name (scale_by_trace calls it `beta`)
        check_momentum("momentum", momentum)
    parts = [
        scale_by_rms(decay, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    ]
    if momentum is not None:
        parts.append(scale_by_trace(momentum))
    precond = Preconditioner("rms", eps, eps_in_sqrt=eps_in_sqrt)
    return tag(optax.chain(*parts), _rule("rmsprop", learning_rate, momentum, precond))


def adam(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    bias_correction: bool = True,
) -> _GTX:
    r"""Adam (lecture 003 with bias correction; lecture 001's steady state without).

    .. math::
      \Delta\theta = -\epsilon\, \frac{\hat s}{\delta + \sqrt{\hat r}}

    with :func:`jaxopt_lab.scale_by_adam`'s moments. With ``bias_correction=True`` it
    equals ``optax.adam(learning_rate, b1, b2, eps)``.

    Args:
      learning_rate: a scalar or a schedule.
      b1: :math:`\rho_1 \in [0, 1)`.
      b2: :math:`\rho_2 \in [0, 1)`.
      eps: :math:`\delta \ge 0`.
      bias_correction: static switch.

    Example:
      >>> import jax.numpy as jnp, optax, jaxopt_lab as jol
      >>> from flax import nnx
      >>> model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
      >>> opt = nnx.Optimizer(model, jol.adam(1e-3), wrt=nnx.Param)

    References:
      Lecture 003 (Favaro), "Adam"; lecture 001, "Adam"; Kingma & Ba, 2015.
    """
    tx = optax.chain(
        scale_by_adam(b1, b2, eps, bias_correction=bias_correction),
        scale_by_learning_rate(learning_rate),
    )
    precond = Preconditioner("adam", eps, b2, bias_correction=bias_correction)
    return tag(tx, Rule("adam", learning_rate, b1, precond))


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: jax.typing.ArrayLike = 0.95,
    eps: jax.typing.ArrayLike = 1e-6,
) -> _GTX:
    r"""AdaDelta (Zeiler, 2012), optionally scaled by a learning rate (1.0 in the paper).

    See :func:`jaxopt_lab.scale_by_adadelta` for the recurrence. Equals
    ``optax.adadelta(learning_rate, rho, eps)``.

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012; lecture 003 lists it.
    """
    tx = optax.chain(scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate))
    return tag(tx, Rule("adadelta", learning_rate))


def delta_bar_delta(
    learning_rate: jax.typing.ArrayLike,
    kappa: jax.typing.ArrayLike,
    phi: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike,
) -> _GTX:
    r"""Delta-bar-delta (Jacobs, 1988; lecture 003): per-parameter adapted rates.

    Rates start at ``learning_rate``, grow by :math:`\kappa` while the gradient keeps
    the sign of its running average and shrink by the factor :math:`1-\phi` when it
    flips. See :func:`jaxopt_lab.scale_by_delta_bar_delta`.

    Args:
      learning_rate: the initial rate (a number, not a schedule).
      kappa: additive increase, :math:`\ge 0`.
      phi: multiplicative decrease, in [0, 1).
      gamma: averaging coefficient of :math:`\bar\delta`, in [0, 1).

    References:
      Lecture 003 (Favaro), "Delta-bar-delta Algorithm"; Jacobs, 1988.
    """
    tx = optax.chain(scale_by_delta_bar_delta(learning_rate, kappa, phi, gamma))
    return tag(tx, Rule("delta_bar_delta", learning_rate))


def sign_sgd(learning_rate: ScalarOrSchedule) -> _GTX:
    r"""Descent along the per-coordinate normalized gradient :math:`g_i/|g_i|` (lecture 002).

    References:
      Lecture 002 (Congeduti), "Normalizing gradients"; Bernstein et al., 2018.
    """
    tx = optax.chain(scale_by_sign(), scale_by_learning_rate(learning_rate))
    return tag(tx, Rule("sign_sgd", learning_rate))


def normalized_sgd(learning_rate: ScalarOrSchedule, eps: jax.typing.ArrayLike = 1e-12) -> _GTX:
    r"""Descent along the globally normalized gradient :math:`g/\lVert g\rVert`.

    The norm is the global one, over all parameters (every leaf of the tree together),
    so every step has length ``learning_rate`` and the direction is the gradient's.
    Congeduti's "Normalizing gradients" (lecture 002) writes the per-coordinate
    normalization :math:`\tilde\nabla L = (\frac{\partial L/\partial w_1}{|\partial
    L/\partial w_1|}, \frac{\partial L/\partial w_2}{|\partial L/\partial w_2|})`, "move a
    fixed distance along each axis": that is :func:`jaxopt_lab.sign_sgd`. Normalizing by
    the global norm instead (rather than per coordinate, or per leaf/layer) is this
    library's choice for ``normalized_sgd``; it keeps the slide's "normalizing the
    gradient magnitude and retaining only the direction" but not its formula.

    References:
      Congeduti, "Optimization" (lecture 002), "Normalizing gradients".
    """
    tx = optax.chain(scale_by_global_norm(eps), scale_by_learning_rate(learning_rate))
    return tag(tx, Rule("normalized_sgd", learning_rate))


def newton(
    learning_rate: ScalarOrSchedule = 1.0,
    damping: jax.typing.ArrayLike = 0.0,
    *,
    saddle_free: bool = False,
    method: str = "auto",
    max_dense: int = 1000,
    cg_tol: float = 1e-5,
    cg_maxiter: int = 100,
    krylov_depth: int = 50,
) -> _GTX:
    r"""Newton's method, :math:`\theta \leftarrow \theta - \alpha (H + \delta I)^{-1}\nabla L`.

    Lecture 004: :math:`x' = x - H(x)^{-1}\nabla_x f(x)`.

    ``chain(scale_by_newton(damping, ...), scale_by_learning_rate(learning_rate))``; with
    ``saddle_free=True`` the Hessian is replaced by :math:`|H|`, so saddles repel (lecture
    003: plain Newton is attracted to them). Pass the loss to every update:
    ``tx.update(grads, state, params, value_fn=loss_fn)``. See
    :func:`jaxopt_lab.scale_by_newton` for how each method solves the system.

    Args:
      learning_rate: :math:`\alpha`, a scalar or schedule (1.0 is the pure Newton step).
      damping: :math:`\delta \ge 0`, added to the Hessian (Levenberg-style). May be traced.
      saddle_free: use :math:`|H|` (absolute eigenvalues). Static.
      method: ``"auto"`` (dense up to ``max_dense`` parameters, else ``"cg"``),
        ``"dense"`` (``jax.hessian`` and a solve, or ``eigh`` with ``saddle_free``) or
        ``"cg"`` (matrix-free: conjugate gradients, or Lanczos with ``saddle_free``). Static.
      max_dense: the largest number of parameters ``"auto"`` solves densely.
      cg_tol: relative residual tolerance of CG, ``>= 0``.
      cg_maxiter: CG iterations at most.
      krylov_depth: Lanczos steps for saddle-free Newton on the matrix-free path.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params`` and
      ``value_fn`` (``params -> scalar loss``).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> import jaxopt_lab as jol
      >>> loss = lambda w: 0.5 * w @ jnp.diag(jnp.array([1.0, 100.0])) @ w - w.sum()
      >>> w = jnp.zeros(2); tx = jol.newton()
      >>> u, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, value_fn=loss)
      >>> optax.apply_updates(w, u).tolist()  # the minimiser A^{-1} b in one step
      [1.0, 0.009999999776482582]

    References:
      Lecture 004, "Newton's method"; lecture 003, saddle points; Dauphin et al., 2014
      (saddle-free Newton).
    """
    return optax.chain(
        scale_by_newton(
            damping,
            saddle_free=saddle_free,
            method=method,
            max_dense=max_dense,
            cg_tol=cg_tol,
            cg_maxiter=cg_maxiter,
            krylov_depth=krylov_depth,
        ),
        scale_by_learning_rate(learning_rate),
    )


def nonlinear_cg(
    learning_rate: ScalarOrSchedule | None = None,
    *,
    method: str = "polak_ribiere_plus",
    linesearch: optax.GradientTransformation | None = None,
) -> _GTX:
    r"""Nonlinear conjugate gradients with a line search, for full-batch problems.

    .. math::
      d_k = -g_k + \beta_k d_{k-1}, \quad
      \beta_k^{PR+} = \max\Big(0, \frac{g_k^\top (g_k - g_{k-1})}{g_{k-1}^\top g_{k-1}}\Big),
      \quad \theta_{k+1} = \theta_k + \eta_k d_k,

    restarting with :math:`d_k = -g_k` when :math:`\beta_k < 0` or :math:`d_k` is not a
    descent direction, and :math:`\eta_k` from a zoom line search (strong Wolfe). LeCun &
    Defazio ("Optimization for Deep Learning", lecture 001): "For batch optimization,
    LBFGS & Conjugate-Gradients are far better than vanilla gradient descent"; on a
    quadratic in :math:`n` dimensions with exact line searches it ends in :math:`n` steps.

    ``chain(scale_by_conjugate_gradient(method), scale_by_learning_rate(lr), linesearch)``,
    as ``optax.lbfgs`` chains its direction, a rate and its line search. Pass the loss
    to every update, ``tx.update(grads, state, params, value=loss, grad=grads,
    value_fn=loss_fn)`` (``value`` and ``grad`` are computed from ``value_fn`` when left
    out); ``jol.train`` passes them. Meant for full batches: on minibatches the line
    search and the conjugacy see a different function at every step.

    Args:
      learning_rate: a factor on the direction before the line search (a scalar or a
        schedule); ``None``: 1, the line search alone sets the step.
      method: :math:`\beta_k`: ``"polak_ribiere_plus"`` (default), ``"fletcher_reeves"``
        or ``"hestenes_stiefel"`` (see :func:`jaxopt_lab.transforms.conjugate.
        scale_by_conjugate_gradient`). Static.
      linesearch: a transformation that scales the direction, e.g.
        ``optax.scale_by_zoom_linesearch(...)``; ``None``:
        :func:`jaxopt_lab.transforms.conjugate.zoom_linesearch` (strong Wolfe with
        :math:`c_2 = 0.1`, starting from the previous step). ``optax.identity()`` with a
        ``learning_rate`` gives fixed steps along the CG directions.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params`` and
      ``value_fn``.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxopt_lab as jol
      >>> f = jol.landscapes.rosenbrock()
      >>> w = jnp.array([-1.5, 2.0]); tx = jol.nonlinear_cg(); state = tx.init(w)
      >>> for _ in range(100):
      ...     u, state = tx.update(jax.grad(f)(w), state, w, value_fn=f)
      ...     w = optax.apply_updates(w, u)
      >>> bool(jnp.allclose(w, 1.0, atol=1e-3))
      True

    References:
      LeCun & Defazio (lecture 001), "Don't use full batch, but if you must..."; Nocedal
      & Wright, "Numerical Optimization", 2nd ed., §5.2; Polak & Ribière, 1969.
    """
    direction = scale_by_conjugate_gradient(method=method)
    rate = scale_by_learning_rate(1.0 if learning_rate is None else learning_rate)
    search = zoom_linesearch() if linesearch is None else linesearch
    return optax.chain(direction, rate, search)
