r"""Adam (Kingma & Ba 2015), with AMSGrad (Reddi et al. 2018) and AdamW
(Loshchilov & Hutter 2019), torch's form.

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \ \text{(amsgrad)} \quad\text{else}\quad v_t \\
    x_t &= x_{t-1} - \frac{\eta}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}

Defaults: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``, ``eps=1e-8``,
``weight_decay=0``, ``amsgrad=False``, ``decoupled_weight_decay=False``.
Method ``"adamw"`` is Adam with ``decoupled_weight_decay=True`` and
``weight_decay=1e-2`` (torch's AdamW defaults).

Notes
-----
eps is added after the bias correction of :math:`\sqrt{v}`, as in the paper's
Algorithm 1 and torch; the "efficient" form of the paper's section 2 (old
Keras/TF) folds eps onto the uncorrected root and differs in the first steps.
Coupled weight decay adds :math:`\lambda x` to the gradient; decoupled first
scales :math:`x \leftarrow x (1 - \eta\lambda)`.  AMSGrad takes the max over
the raw :math:`v` (torch; optax takes it over the bias-corrected one).
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
    learning_rate: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    decoupled_weight_decay: bool = False
    maximize: bool = False


B1 = field_index(Hyper, "b1")
B2 = field_index(Hyper, "b2")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")
DECOUPLED = field_index(Hyper, "decoupled_weight_decay")
# derived constants appended to h by prepare(): log b1, log b2 and the steps
# from which 1 - b1**t, 1 - b2**t are exactly 1 (see _base.power_log)
LOG_B1 = len(numeric_fields(Hyper))
LOG_B2 = LOG_B1 + 1
SAT_B1 = LOG_B1 + 2
SAT_B2 = LOG_B1 + 3

ADAMW_DEFAULTS = {"weight_decay": 1e-2, "decoupled_weight_decay": True}

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_unit("b1", h.b1)
    check_unit("b2", h.b2)
    check_eps(h)
    check_weight_decay(h)


def prepare(h):
    """Constants derived once from the hyperparameters, appended to ``h``."""
    (lb1, t1), (lb2, t2) = power_log(h[B1]), power_log(h[B2])
    return (*h, lb1, lb2, t1, t2)


def coeffs(h, t, lr, aux, c):
    b1 = h[B1]
    b2 = h[B2]
    # b**t as exp(t log b): half the cost of pow, and the bias corrections
    # agree with torch's pow to a few ulps; none at all once 1 - b**t rounds
    # to 1 (most of a long run: the exps were half of a 2-D Adam iteration)
    bc1 = 1.0 if t >= h[SAT_B1] else 1.0 - math.exp(t * h[LOG_B1])
    bc2 = 1.0 if t >= h[SAT_B2] else 1.0 - math.exp(t * h[LOG_B2])
    c[0] = lr / bc1
    # 1 / sqrt(1 - b2**t): the element update multiplies by it instead of
    # dividing by sqrt(1 - b2**t) (torch's form): one division per element
    # fewer (the float64 step at n = 1e4 is bound by divisions and square
    # roots: 5.7 -> 4.5 us, benchmarks/compare.py); a last-bit difference from
    # torch while t < t_sat, none after (the factor is then exactly 1)
    c[1] = 1.0 / math.sqrt(bc2)
    c[2] = h[EPS]
    c[3] = b1
    c[4] = 1.0 - b1
    c[5] = b2
    c[6] = 1.0 - b2
    if h[DECOUPLED] != 0.0:
        c[7] = 0.0
        c[8] = 1.0 - lr * h[WD]
    else:
        c[7] = h[WD]
        c[8] = 1.0
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    xi = x[i] * c[8]
    gi = c[SIGN] * g[i] + c[7] * xi
    m = c[3] * S[0, i] + c[4] * gi
    v = c[5] * S[1, i] + c[6] * gi * gi
    S[0, i] = m
    S[1, i] = v
    x[i] = xi - c[0] * (m / (math.sqrt(v) * c[1] + c[2]))


def elem_amsgrad(i, x, g, S, c):
    xi = x[i] * c[8]
    gi = c[SIGN] * g[i] + c[7] * xi
    m = c[3] * S[0, i] + c[4] * gi
    v = c[5] * S[1, i] + c[6] * gi * gi
    vmax = v if v > S[2, i] else S[2, i]  # not max(): its NaN branch blocks vectorising
    S[0, i] = m
    S[1, i] = v
    S[2, i] = vmax
    x[i] = xi - c[0] * (m / (math.sqrt(vmax) * c[1] + c[2]))


KERNELS = {
    "adam": Kernel(elem, coeffs, ("exp_avg", "exp_avg_sq")),
    "adam_amsgrad": Kernel(elem_amsgrad, coeffs, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
}


def kernel_key(h):
    return "adam_amsgrad" if h.amsgrad else "adam"


def slot_init(h):
    return {}
