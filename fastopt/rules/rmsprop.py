r"""RMSProp (Tieleman & Hinton 2012, Coursera lecture 6e), torch's form.

.. math::

    v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2 \\
    \bar g_t &= \bar g_{t-1} + (1-\alpha)(g_t - \bar g_{t-1})
        \quad\text{(centered only)} \\
    d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{(centered)}
        \quad\text{or}\quad \sqrt{v_t} + \epsilon \\
    b_t &= \mu b_{t-1} + g_t / d_t,\quad x_t = x_{t-1} - \eta b_t
        \quad\text{if } \mu > 0, \text{ else } x_t = x_{t-1} - \eta g_t/d_t

Defaults: ``learning_rate=1e-2``, ``decay=0.99`` (:math:`\alpha`, torch's
``alpha``), ``eps=1e-8``, ``momentum=0``, ``centered=False``,
``weight_decay=0`` (coupled).

Notes
-----
eps is outside the square root (torch).  The lecture uses decay 0.9 and no
eps.  The centered form is Graves (2013).  Near a minimum the centered
denominator tends to 0, so rounding differences grow fast there.
"""

import math
from typing import NamedTuple

from ._base import (
    SIGN,
    Kernel,
    check_closed_unit,
    check_eps,
    check_lr,
    check_weight_decay,
    field_index,
)


class Hyper(NamedTuple):
    learning_rate: float = 1e-2
    decay: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    weight_decay: float = 0.0
    maximize: bool = False


DECAY = field_index(Hyper, "decay")
EPS = field_index(Hyper, "eps")
MU = field_index(Hyper, "momentum")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_closed_unit("decay", h.decay)
    check_eps(h)
    if not h.momentum >= 0.0:
        raise ValueError(f"Invalid momentum value: {h.momentum}")
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr
    c[1] = h[WD]
    c[2] = h[DECAY]
    c[3] = 1.0 - h[DECAY]
    c[4] = h[EPS]
    c[5] = h[MU]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


# One element function per state layout: the slots a variant does not use are
# not allocated, and each loop body stays branch-free so it vectorises.
def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    v = c[2] * S[0, i] + c[3] * gi * gi
    S[0, i] = v
    x[i] = x[i] - c[0] * (gi / (math.sqrt(v) + c[4]))


def elem_centered(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    v = c[2] * S[0, i] + c[3] * gi * gi
    S[0, i] = v
    gb = S[1, i] + c[3] * (gi - S[1, i])
    S[1, i] = gb
    x[i] = x[i] - c[0] * (gi / (math.sqrt(v - gb * gb) + c[4]))


def elem_momentum(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    v = c[2] * S[0, i] + c[3] * gi * gi
    S[0, i] = v
    b = c[5] * S[1, i] + gi / (math.sqrt(v) + c[4])
    S[1, i] = b
    x[i] = x[i] - c[0] * b


def elem_centered_momentum(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    v = c[2] * S[0, i] + c[3] * gi * gi
    S[0, i] = v
    gb = S[1, i] + c[3] * (gi - S[1, i])
    S[1, i] = gb
    b = c[5] * S[2, i] + gi / (math.sqrt(v - gb * gb) + c[4])
    S[2, i] = b
    x[i] = x[i] - c[0] * b


KERNELS = {
    "rmsprop": Kernel(elem, coeffs, ("square_avg",)),
    "rmsprop_centered": Kernel(elem_centered, coeffs, ("square_avg", "grad_avg")),
    "rmsprop_momentum": Kernel(elem_momentum, coeffs, ("square_avg", "momentum_buffer")),
    "rmsprop_centered_momentum": Kernel(
        elem_centered_momentum, coeffs, ("square_avg", "grad_avg", "momentum_buffer")
    ),
}


def kernel_key(h):
    return "rmsprop" + ("_centered" if h.centered else "") + ("_momentum" if h.momentum > 0 else "")


def slot_init(h):
    return {}
