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
from jaxopt_lab._validation import check_choice, check_unit_interval
from jaxopt_lab.transforms._common import scale_by_learning_rate
from jaxopt_lab.transforms._rule import Preconditioner, Rule, tag
from jaxopt_lab.transforms.adaptive import (
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_rms,
)
from jaxopt_lab.transforms.delta_bar_delta import scale_by_delta_bar_delta
from jaxopt_lab.transforms.momentum import scale_by_ema, scale_by_trace
from jaxopt_lab.transforms.newton import scale_by_newton
from jaxopt_lab.transforms.normalized import scale_by_global_norm, scale_by_sign

_GTX = optax.GradientTransformationExtraArgs


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
    learning_rate: ScalarOrSchedule, beta: jax.typing.ArrayLike = 0.9, *, form: str = "velocity"
) -> _GTX:
    r"""SGD with momentum in one of the lectures' three forms.

    * ``"velocity"`` (lectures 000, 003, 004, Goodfellow alg. 8.2):
      :math:`p \leftarrow \mu p - \alpha g,\; \theta \leftarrow \theta + p`;
    * ``"ema"`` (lecture 002): :math:`v \leftarrow \beta v + (1-\beta) g,\;
      w \leftarrow w - \alpha v`;
    * ``"accumulate"`` (lecture 001, heavy ball): :math:`p \leftarrow \beta p + g,\;
      w \leftarrow w - \alpha p`; equals ``optax.sgd(lr, momentum=beta)``.

    Velocity and accumulate agree for a constant rate and differ under a schedule;
    the EMA form takes steps :math:`1-\beta` times smaller for the same :math:`\alpha`.

    Args:
      learning_rate: :math:`\alpha`, a scalar or a schedule.
      beta: the momentum coefficient :math:`\mu = \beta \in [0, 1)`.
      form: ``"velocity"``, ``"ema"`` or ``"accumulate"``. Static.

    Example:
      >>> import jaxopt_lab as jol, optax
      >>> tx = jol.momentum(0.01, beta=0.9, form="accumulate")  # == optax.sgd(0.01, 0.9)

    References:
      Lecture 000 (Grosse & Ba), "Momentum"; lecture 001, "Momentum acceleration
      methods"; lecture 002, "Momentum"; lecture 003, "SGD with Momentum".
    """
    check_choice("form", form, ("velocity", "ema", "accumulate"))
    if form == "velocity":
        tx = optax.chain(scale_by_learning_rate(learning_rate), scale_by_trace(beta))
    elif form == "ema":
        tx = optax.chain(scale_by_ema(beta), scale_by_learning_rate(learning_rate))
    else:
        tx = optax.chain(scale_by_trace(beta), scale_by_learning_rate(learning_rate))
    name = "momentum_ema" if form == "ema" else "momentum"  # velocity = accumulate (heavy ball)
    return tag(tx, Rule(name, learning_rate, beta))


def nesterov(learning_rate: ScalarOrSchedule, beta: jax.typing.ArrayLike = 0.9) -> _GTX:
    r"""Nesterov's momentum in lecture 001's form.

    .. math::
      p_{k+1} = \beta p_k + \nabla f(w_k), \qquad
      w_{k+1} = w_k - \gamma\,(\nabla f(w_k) + \beta p_{k+1}).

    Equals ``optax.sgd(lr, momentum=beta, nesterov=True)`` and
    ``torch.optim.SGD(nesterov=True)``.

    Args:
      learning_rate: :math:`\gamma`, a scalar or a schedule.
      beta: :math:`\beta \in [0, 1)`.

    References:
      Lecture 001 (LeCun & Defazio), "Momentum accelerates"; lecture 003, "Nesterov
      Momentum"; Sutskever et al., 2013.
    """
    tx = optax.chain(scale_by_trace(beta, nesterov=True), scale_by_learning_rate(learning_rate))
    return tag(tx, Rule("nesterov", learning_rate, beta))


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
    momentum: jax.typing.ArrayLike | None = None,
) -> _GTX:
    r"""RMSProp: :math:`r \leftarrow \rho r + (1-\rho) g\odot g`, then scaled descent.

    ``eps_in_sqrt=True`` (lectures 003/004): :math:`\Delta\theta = -\epsilon g/\sqrt{\delta+r}`;
    ``False`` (lecture 001): :math:`-\gamma g / (\sqrt{r} + \epsilon)`. With ``momentum``
    the scaled step feeds a velocity :math:`v \leftarrow \alpha v + \Delta\theta`
    (Goodfellow alg. 8.6), as ``optax.rmsprop(momentum=...)`` does.

    Args:
      learning_rate: a scalar or a schedule.
      decay: :math:`\rho \in [0, 1)`.
      eps: :math:`\delta \ge 0`, default :math:`10^{-6}` as in Goodfellow alg. 8.5.
      eps_in_sqrt: where ``eps`` goes. Static.
      momentum: optional :math:`\alpha \in [0, 1)`. ``None`` (static) for none.

    References:
      Lecture 003 (Favaro), "RMSProp"; lecture 004, algorithm 8.5; lecture 001,
      "RMSprop"; Tieleman & Hinton, 2012.
    """
    if momentum is not None:  # checked under its own name (scale_by_trace calls it `beta`)
        check_unit_interval("momentum", momentum)
    parts = [
        scale_by_rms(decay, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    ]
    if momentum is not None:
        parts.append(scale_by_trace(momentum))
    precond = Preconditioner("rms", eps, eps_in_sqrt=eps_in_sqrt)
    return tag(optax.chain(*parts), Rule("rmsprop", learning_rate, momentum, precond))


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
    r"""Descent along the globally normalized gradient :math:`g/\lVert g\rVert` (lecture 002).

    Every step has length ``learning_rate``.

    References:
      Lecture 002 (Congeduti), "Normalizing gradients".
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
