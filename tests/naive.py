"""Naive NumPy references for every first-order update rule.

Written from the equations of ``shared/reference/update-rules.md`` (and, for
the Rprop variants, from the pseudo-code of Riedmiller & Braun 1993 and
Igel & Hüsken 2000), not from fastopt's code: whole-array NumPy, one
function per rule, no compilation, no coefficient vectors.  The tests in
``test_rules.py`` iterate :data:`NAIVE`.

Conventions
-----------
* ``t`` counts updates from **1**; ``lr`` is the learning rate of this update
  (a schedule's value, or ``learning_rate``).
* Every computation stays in the dtype of ``x``: hyperparameters are Python
  floats, which NumPy (NEP 50) treats as "weak" scalars, so a float32 ``x``
  gives a float32 trajectory.
* State buffers are named like torch.optim's state keys (and fastopt's slots):
  ``exp_avg``, ``square_avg``, ``prev`` ...
* ``step`` returns the new ``x`` and replaces the state's arrays in the dict.

>>> import numpy as np
>>> x, traj, state = run("sgd", np.array([1.0]), lambda x, k: 2 * x, 2, learning_rate=0.25)
>>> traj[:, 0].tolist()
[0.5, 0.25]
"""

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np


class NaiveRule(NamedTuple):
    defaults: dict  # option -> default, from the table in update-rules.md
    init: Callable  # (x, h) -> state dict
    step: Callable  # (x, g, state, t, lr, value, h) -> new x


def _zeros(x, *names):
    return {name: np.zeros_like(x) for name in names}


def _coupled(x, g, h):
    """Coupled L2 weight decay: ``g + wd*x`` before anything else."""
    return g + h.weight_decay * x


# ---------------------------------------------------------------- SGD family
def sgd_step(x, g, s, t, lr, value, h):
    g = _coupled(x, g, h)
    return x - lr * g


def momentum_step(x, g, s, t, lr, value, h):
    # torch.optim.SGD: the first buffer is the gradient itself, undampened
    g = _coupled(x, g, h)
    if t == 1 or h.momentum == 0:  # torch: no buffer (and no dampening) at momentum 0
        b = g.copy()
    else:
        b = h.momentum * s["momentum_buffer"] + (1 - h.dampening) * g
    s["momentum_buffer"] = b
    return x - lr * b


def nag_step(x, g, s, t, lr, value, h):
    # Sutskever et al. 2013 in the look-ahead variable (torch nesterov=True)
    g = _coupled(x, g, h)
    if t == 1:
        b = g.copy()
    else:
        b = h.momentum * s["momentum_buffer"] + g
    s["momentum_buffer"] = b
    return x - lr * (g + h.momentum * b)


# ---------------------------------------------------------------- Rprop
def rprop_init(x, h):
    s = _zeros(x, "prev", "step_size", "delta")
    s["step_size"][:] = h.learning_rate  # the initial step Delta_0
    s["last_value"] = math.nan  # E(t-1), for iRprop+
    return s


def rprop_step(x, g, s, t, lr, value, h):
    """The four Rprop variants of Igel & Hüsken (2000), vectorised.

    The step is clipped to [min_step, max_step] on every update, the first
    included (torch); the papers only clip after a multiplication, which is
    the same once the step lies inside the bounds.  ``lr`` is ignored:
    ``learning_rate`` is only the initial step.
    """
    prod = g * s["prev"]
    up, down = prod > 0, prod < 0  # same sign / sign change

    step = s["step_size"].copy()
    step[up] *= h.eta_plus
    step[down] *= h.eta_minus
    step = np.clip(step, h.min_step, h.max_step)
    s["step_size"] = step

    if h.variant == "rprop-":
        # Rprop without weight backtracking (the lecture's slide)
        s["prev"] = g.copy()
        return x - np.sign(g) * step

    if h.variant == "irprop-":
        # Igel & Hüsken's iRprop-: after a sign change, no move and dE/dw := 0
        g = np.where(down, 0 * g, g)
        s["prev"] = g
        return x - np.sign(g) * step

    # Rprop+ (Riedmiller & Braun 1993) and iRprop+ (Igel & Hüsken 2000):
    #   sign change:  w(t+1) = w(t) - dw(t-1)   [iRprop+: only if E(t) > E(t-1)]
    #                 dE/dw(t) := 0  (dw(t) is never read afterwards: kept)
    #   otherwise:    dw(t) = -sign(dE/dw(t)) * Delta(t);  w(t+1) = w(t) + dw(t)
    if h.variant == "rprop+":
        backtrack = down
    elif h.variant == "irprop+":
        backtrack = down if value > s["last_value"] else np.zeros_like(down)
    else:
        raise ValueError(f"unknown rprop variant {h.variant!r}")
    s["last_value"] = value
    dw = -np.sign(g) * step
    x_new = np.where(down, x, x + dw)
    x_new = np.where(backtrack, x - s["delta"], x_new)
    s["delta"] = np.where(down, s["delta"], dw)
    s["prev"] = np.where(down, 0 * g, g)
    return x_new


# ---------------------------------------------------------------- adaptive
def adagrad_init(x, h):
    return {"sum": np.full_like(x, h.initial_accumulator_value)}


def adagrad_step(x, g, s, t, lr, value, h):
    g = _coupled(x, g, h)
    s["sum"] = s["sum"] + g * g
    clr = lr / (1 + (t - 1) * h.lr_decay)
    return x - clr * g / (np.sqrt(s["sum"]) + h.eps)


def rmsprop_step(x, g, s, t, lr, value, h):
    g = _coupled(x, g, h)
    a = h.decay
    s["square_avg"] = a * s["square_avg"] + (1 - a) * g * g
    if h.centered:  # Graves 2013: divide by the standard deviation
        s["grad_avg"] = s["grad_avg"] + (1 - a) * (g - s["grad_avg"])
        d = np.sqrt(s["square_avg"] - s["grad_avg"] ** 2) + h.eps
    else:
        d = np.sqrt(s["square_avg"]) + h.eps
    if h.momentum > 0:
        s["momentum_buffer"] = h.momentum * s["momentum_buffer"] + g / d
        return x - lr * s["momentum_buffer"]
    return x - lr * g / d


def adadelta_step(x, g, s, t, lr, value, h):
    g = _coupled(x, g, h)
    rho, eps = h.rho, h.eps
    s["square_avg"] = rho * s["square_avg"] + (1 - rho) * g * g
    d = np.sqrt(s["acc_delta"] + eps) / np.sqrt(s["square_avg"] + eps) * g
    s["acc_delta"] = rho * s["acc_delta"] + (1 - rho) * d * d  # the unscaled d
    return x - lr * d


def adam_step(x, g, s, t, lr, value, h):
    if h.decoupled_weight_decay:  # AdamW: shrink x first, g untouched
        x = x * (1 - lr * h.weight_decay)
    else:
        g = _coupled(x, g, h)
    b1, b2 = h.b1, h.b2
    s["exp_avg"] = b1 * s["exp_avg"] + (1 - b1) * g
    s["exp_avg_sq"] = b2 * s["exp_avg_sq"] + (1 - b2) * g * g
    v = s["exp_avg_sq"]
    if h.amsgrad:  # Reddi et al. 2018, max over the raw v (torch)
        s["max_exp_avg_sq"] = np.maximum(s["max_exp_avg_sq"], v)
        v = s["max_exp_avg_sq"]
    return x - (lr / (1 - b1**t)) * s["exp_avg"] / (np.sqrt(v) / math.sqrt(1 - b2**t) + h.eps)


def adamax_step(x, g, s, t, lr, value, h):
    g = _coupled(x, g, h)
    s["exp_avg"] = h.b1 * s["exp_avg"] + (1 - h.b1) * g
    s["exp_inf"] = np.maximum(h.b2 * s["exp_inf"], np.abs(g) + h.eps)
    return x - lr / (1 - h.b1**t) * (s["exp_avg"] / s["exp_inf"])


def _weight_decay(x, g, lr, h):
    """Coupled (``g + wd*x``) or decoupled (``x *= 1 - lr*wd`` first) weight decay."""
    if h.decoupled_weight_decay:
        return x * (1 - lr * h.weight_decay), g
    return x, g + h.weight_decay * x


def nadam_init(x, h):
    s = _zeros(x, "exp_avg", "exp_avg_sq")
    s["mu_product"] = 1.0  # a float64 scalar, not an array
    return s


def nadam_step(x, g, s, t, lr, value, h):
    # Dozat 2016 with torch 2.13's momentum schedule mu_t = b1 (1 - 0.5 * 0.96**(t psi))
    x, g = _weight_decay(x, g, lr, h)
    mu = h.b1 * (1 - 0.5 * 0.96 ** (t * h.momentum_decay))
    mu_next = h.b1 * (1 - 0.5 * 0.96 ** ((t + 1) * h.momentum_decay))
    s["mu_product"] *= mu
    prod = s["mu_product"]
    s["exp_avg"] = h.b1 * s["exp_avg"] + (1 - h.b1) * g
    s["exp_avg_sq"] = h.b2 * s["exp_avg_sq"] + (1 - h.b2) * g * g
    denom = np.sqrt(s["exp_avg_sq"] / (1 - h.b2**t)) + h.eps
    x = x - lr * (1 - mu) / (1 - prod) * g / denom
    return x - lr * mu_next / (1 - prod * mu_next) * s["exp_avg"] / denom


def radam_step(x, g, s, t, lr, value, h):
    # Liu et al. 2020, Algorithm 2, with torch's eps (added to sqrt(v))
    x, g = _weight_decay(x, g, lr, h)
    s["exp_avg"] = h.b1 * s["exp_avg"] + (1 - h.b1) * g
    s["exp_avg_sq"] = h.b2 * s["exp_avg_sq"] + (1 - h.b2) * g * g
    m_hat = s["exp_avg"] / (1 - h.b1**t)
    rho_inf = 2 / (1 - h.b2) - 1
    rho_t = rho_inf - 2 * t * h.b2**t / (1 - h.b2**t)
    if rho_t <= 5:  # the variance estimate is not yet trusted: momentum SGD
        return x - lr * m_hat
    r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    return x - lr * m_hat * r * math.sqrt(1 - h.b2**t) / (np.sqrt(s["exp_avg_sq"]) + h.eps)


# ---------------------------------------------------------------- registry
_ADAM = dict(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled_weight_decay=False,
)


def _zero_init(*names):
    return lambda x, h: _zeros(x, *names)


NAIVE = {
    "sgd": NaiveRule(dict(learning_rate=1e-3, weight_decay=0.0), _zero_init(), sgd_step),
    "momentum": NaiveRule(
        dict(learning_rate=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0),
        _zero_init("momentum_buffer"),
        momentum_step,
    ),
    "nag": NaiveRule(
        dict(learning_rate=1e-3, momentum=0.9, weight_decay=0.0),
        _zero_init("momentum_buffer"),
        nag_step,
    ),
    "rprop": NaiveRule(
        dict(
            learning_rate=1e-2,
            eta_minus=0.5,
            eta_plus=1.2,
            min_step=1e-6,
            max_step=50.0,
            variant="irprop-",
        ),
        rprop_init,
        rprop_step,
    ),
    "adagrad": NaiveRule(
        dict(
            learning_rate=1e-2,
            lr_decay=0.0,
            initial_accumulator_value=0.0,
            eps=1e-10,
            weight_decay=0.0,
        ),
        adagrad_init,
        adagrad_step,
    ),
    "rmsprop": NaiveRule(
        dict(
            learning_rate=1e-2, decay=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0
        ),
        _zero_init("square_avg", "grad_avg", "momentum_buffer"),
        rmsprop_step,
    ),
    "adadelta": NaiveRule(
        dict(learning_rate=1.0, rho=0.9, eps=1e-6, weight_decay=0.0),
        _zero_init("square_avg", "acc_delta"),
        adadelta_step,
    ),
    "adam": NaiveRule(_ADAM, _zero_init("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), adam_step),
    "adamw": NaiveRule(
        {**_ADAM, "weight_decay": 1e-2, "decoupled_weight_decay": True},
        _zero_init("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        adam_step,
    ),
    "adamax": NaiveRule(
        dict(learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0),
        _zero_init("exp_avg", "exp_inf"),
        adamax_step,
    ),
    # torch 2.13's NAdam and RAdam defaults
    "nadam": NaiveRule(
        dict(
            learning_rate=2e-3,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            momentum_decay=4e-3,
            decoupled_weight_decay=False,
        ),
        nadam_init,
        nadam_step,
    ),
    "radam": NaiveRule(
        dict(
            learning_rate=1e-3,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            decoupled_weight_decay=False,
        ),
        _zero_init("exp_avg", "exp_avg_sq"),
        radam_step,
    ),
}


def hyper(name, **options):
    """The rule's options with defaults filled in; unknown options raise TypeError."""
    defaults = {**NAIVE[name].defaults, "maximize": False}
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}")
    return SimpleNamespace(**{**defaults, **options})


def init(name, x, **options):
    """A fresh state for ``x``."""
    return NAIVE[name].init(x, hyper(name, **options))


def step(name, x, g, state, t, lr=None, value=None, **options):
    """Update number ``t`` (1-based): returns the new ``x``, updates ``state``."""
    h = hyper(name, **options)
    lr = h.learning_rate if lr is None else lr
    if h.maximize:
        # torch: maximize f is minimizing -f, the gradient negated on entry (before
        # weight decay); iRprop+'s "error went up" is then f going down
        g = -g
        value = None if value is None else -value
    return NAIVE[name].step(x, g, state, t, lr, value, h)


def run(name, x0, grad, steps, lrs=None, fun=None, **options):
    """``steps`` updates from ``x0`` with ``g = grad(x, k)`` at the current point.

    ``k`` is the 0-based update number; ``lrs[k]`` the learning rate of that
    update; ``fun(x, k)`` the objective, passed as ``value`` (iRprop+ compares
    it with the previous one).  Returns ``(x, trajectory (steps, n), state)``.
    """
    x = np.array(x0, copy=True)
    state = init(name, x, **options)
    traj = np.empty((steps, x.shape[0]), dtype=x.dtype)
    for k in range(steps):
        g = grad(x, k)
        value = None if fun is None else fun(x, k)
        lr = None if lrs is None else lrs[k]
        x = step(name, x, g, state, k + 1, lr=lr, value=value, **options)
        traj[k] = x
    return x, traj, state


# ---------------------------------------------------------------- test problem
class MovingTarget:
    r"""The objective the rule tests drive every optimizer on.

    .. math::

        f_k(x) = \sum_i 	frac{d_i}{2}igl(x_i - c_i - \sin(0.1 k + \phi_i)igr)^2
                 - 	frac16 \cos(3 x_i)

    a separable bowl (curvatures 0.5..4) whose centre moves with the update
    number ``k``, plus a ripple, so the gradient is a non-linear function of
    the current ``x`` and the trajectory feeds back.  The centre moves on
    purpose: with a fixed minimum, RMSProp, Adam and AdaMax at these
    learning rates settle into a chaotic oscillation around it, where a
    1e-14 perturbation of ``x0`` grows 1e10-fold and a 1-ulp difference from
    torch.optim reaches 1e-2 within 300 steps (measured), so no tolerance
    means anything.  Tracking a moving target keeps every rule contractive:
    a 1e-13 relative perturbation of ``x0`` grows at most ~20-fold over 300
    steps for every case in the tests (measured).
    """

    def __init__(self, n=37):
        self.d = np.linspace(0.5, 4.0, n)
        self.c = (1.0 + np.linspace(0.0, 2.0, n)) * (-1.0) ** np.arange(n)
        self.phase = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        self.x0 = np.linspace(-2.0, 2.0, n)

    def centre(self, k):
        return self.c + np.sin(0.1 * k + self.phase)

    def fun(self, x, k):
        x = x.astype(np.float64)
        return float(np.sum(0.5 * self.d * (x - self.centre(k)) ** 2 - np.cos(3 * x) / 6))

    def grad(self, x, k):
        """The gradient at ``x``, in the dtype of ``x``."""
        xd = x.astype(np.float64)
        return (self.d * (xd - self.centre(k)) + 0.5 * np.sin(3 * xd)).astype(x.dtype)
