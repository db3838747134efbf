r"""RAdam: Adam with a rectified adaptive rate (Liu et al. 2020), torch's form.

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t} \\
    r_t &= \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
        {(\rho_\infty-4)(\rho_\infty-2)\rho_t}} \\
    x_t &= x_{t-1} - \frac{\eta}{1-\beta_1^t}\, m_t \cdot
    \begin{cases}
        r_t \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\
        1 & \text{otherwise (SGD with momentum while the variance estimate is poor)}
    \end{cases}

Defaults (torch 2.13): ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``, ``decoupled_weight_decay=False`` (True:
:math:`x \leftarrow x(1-\eta\lambda)` first; else :math:`g \leftarrow g +
\lambda x`), ``maximize=False``.

Notes
-----
eps is added to :math:`\sqrt{v_t}` before the bias correction (torch; the
paper has no eps).  Which branch a step takes depends on :math:`t` only, so
``coeffs`` decides it once per step and ``elem`` selects without branching.
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
)


class Hyper(NamedTuple):
    learning_rate: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    maximize: bool = False


B1 = field_index(Hyper, "b1")
B2 = field_index(Hyper, "b2")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")
DECOUPLED = field_index(Hyper, "decoupled_weight_decay")
MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_unit("b1", h.b1)
    check_unit("b2", h.b2)
    check_eps(h)
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    b1 = h[B1]
    b2 = h[B2]
    tf = t * 1.0  # torch's step is a float: b ** step is pow(b, step)
    bc1 = 1.0 - math.pow(b1, tf)
    b2t = math.pow(b2, tf)
    bc2 = 1.0 - b2t
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho_t = rho_inf - 2.0 * tf * b2t / bc2
    if rho_t > 5.0:
        rect = math.sqrt(
            (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
        )
        c[0] = lr / bc1 * rect * math.sqrt(bc2)
        c[1] = 1.0
    else:
        c[0] = lr / bc1
        c[1] = 0.0
    c[3] = h[EPS]
    c[4] = b1
    c[5] = 1.0 - b1
    c[6] = b2
    c[7] = 1.0 - b2
    if h[DECOUPLED] != 0.0:
        c[8] = 0.0
        c[9] = 1.0 - lr * h[WD]
    else:
        c[8] = h[WD]
        c[9] = 1.0
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    xi = x[i] * c[9]
    gi = c[SIGN] * g[i] + c[8] * xi
    m = c[4] * S[0, i] + c[5] * gi
    v = c[6] * S[1, i] + c[7] * gi * gi
    S[0, i] = m
    S[1, i] = v
    # a select on a per-step flag, not a branch: the loop still vectorises
    a = c[0] / (math.sqrt(v) + c[3])
    a = a if c[1] > 0.0 else c[0]
    x[i] = xi - a * m


KERNELS = {"radam": Kernel(elem, coeffs, ("exp_avg", "exp_avg_sq"))}


def kernel_key(h):
    return "radam"


def slot_init(h):
    return {}
