r"""AdaMax (Kingma & Ba 2015, section 7.1), torch's form.

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
    x_t &= x_{t-1} - \frac{\eta}{1-\beta_1^t}\, \frac{m_t}{u_t}

Defaults: ``learning_rate=2e-3``, ``b1=0.9``, ``b2=0.999``, ``eps=1e-8``,
``weight_decay=0`` (coupled).

Notes
-----
eps sits inside the max (torch, optax); the paper has no eps.
"""

import math
from typing import NamedTuple

from ._base import (
    SIGN,
    Kernel,
    check_eps,
    check_lr,
    check_unit,
    check_weight_decay,
    field_index,
    numeric_fields,
    power_log,
)


class Hyper(NamedTuple):
    learning_rate: float = 2e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    maximize: bool = False


B1 = field_index(Hyper, "b1")
B2 = field_index(Hyper, "b2")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")
LOG_B1 = len(numeric_fields(Hyper))  # appended by prepare(), with SAT_B1
SAT_B1 = LOG_B1 + 1

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_unit("b1", h.b1)
    check_unit("b2", h.b2)
    check_eps(h)
    check_weight_decay(h)


def prepare(h):
    """Constants derived once from the hyperparameters, appended to ``h``."""
    return (*h, *power_log(h[B1]))


def coeffs(h, t, lr, aux, c):
    bc1 = 1.0 if t >= h[SAT_B1] else 1.0 - math.exp(t * h[LOG_B1])  # see adam.coeffs
    c[0] = lr / bc1
    c[1] = h[WD]
    c[2] = h[B1]
    c[3] = 1.0 - h[B1]
    c[4] = h[B2]
    c[5] = h[EPS]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    m = c[2] * S[0, i] + c[3] * gi
    bu = c[4] * S[1, i]
    ag = abs(gi) + c[5]
    u = bu if bu > ag else ag  # not max(): its NaN branch blocks vectorising
    S[0, i] = m
    S[1, i] = u
    x[i] = x[i] - c[0] * (m / u)


KERNELS = {"adamax": Kernel(elem, coeffs, ("exp_avg", "exp_inf"))}


def kernel_key(h):
    return "adamax"


def slot_init(h):
    return {}
