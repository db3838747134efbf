r"""AdaDelta (Zeiler 2012), torch's form.

.. math::

    v_t &= \rho v_{t-1} + (1-\rho) g_t^2 \\
    d_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
    u_t &= \rho u_{t-1} + (1-\rho) d_t^2 \\
    x_t &= x_{t-1} - \eta\, d_t

Defaults: ``learning_rate=1.0``, ``rho=0.9``, ``eps=1e-6``,
``weight_decay=0`` (coupled).

Notes
-----
The lecture's "units of the update" argument: the ratio of RMS(update) to
RMS(gradient) approximates the inverse diagonal Hessian, so :math:`d` has the
units of :math:`x`.  ``u`` accumulates the unscaled :math:`d` (torch), and
``learning_rate`` is a plain multiplier (the paper has none: use 1.0).  The
lecture's slide calls the decays :math:`\gamma_1, \gamma_2`; here both are
``rho`` as in the paper and torch.
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
    learning_rate: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0
    maximize: bool = False


RHO = field_index(Hyper, "rho")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_closed_unit("rho", h.rho)
    check_eps(h)
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr
    c[1] = h[WD]
    c[2] = h[RHO]
    c[3] = 1.0 - h[RHO]
    c[4] = h[EPS]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    v = c[2] * S[0, i] + c[3] * gi * gi
    S[0, i] = v
    d = math.sqrt(S[1, i] + c[4]) / math.sqrt(v + c[4]) * gi
    S[1, i] = c[2] * S[1, i] + c[3] * d * d
    x[i] = x[i] - c[0] * d


KERNELS = {"adadelta": Kernel(elem, coeffs, ("square_avg", "acc_delta"))}


def kernel_key(h):
    return "adadelta"


def slot_init(h):
    return {}
