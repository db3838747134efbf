r"""NAdam: Adam with Nesterov momentum (Dozat 2016), torch's form with the
momentum schedule of the paper.

.. math::

    \mu_t &= \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \qquad
        \Pi_t = \prod_{k \le t} \mu_k \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    d_t &= \sqrt{v_t / (1-\beta_2^t)} + \epsilon \\
    x_t &= x_{t-1} - \eta\,\frac{1-\mu_t}{1-\Pi_t}\,\frac{g_t}{d_t}
        - \eta\,\frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,\frac{m_t}{d_t}

Defaults (torch 2.13): ``learning_rate=2e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``, ``momentum_decay=4e-3`` (:math:`\psi`),
``decoupled_weight_decay=False`` (True: NAdamW, :math:`x \leftarrow
x(1-\eta\lambda)` first; else :math:`g \leftarrow g + \lambda x`),
``maximize=False``.

Notes
-----
The running product :math:`\Pi_t` ("``mu_product``", torch's state key) is
one scalar per state, not per element: it lives beside ``count`` in the
state (:attr:`fastopt.optim.OptState.scalars`, saved by ``to_dict``) and is
kept in float64 for float32 parameters too.  torch keeps it as a tensor of
the default dtype, so with float32 as the default it drifts ~1e-11..1e-9
from the float64 product.  ``coeffs`` carries it from step to step in the
derived part of ``h`` (``MU_PRODUCT`` through step ``MU_T``): the optimizer
API loads it from the state before each step; a run of
:func:`fastopt.minimize` keeps it there; a step that is not the next one
recomputes the product from the first step, with the same roundings.
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
)


class Hyper(NamedTuple):
    learning_rate: float = 2e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum_decay: float = 4e-3
    decoupled_weight_decay: bool = False
    maximize: bool = False


B1 = field_index(Hyper, "b1")
B2 = field_index(Hyper, "b2")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")
PSI = field_index(Hyper, "momentum_decay")
DECOUPLED = field_index(Hyper, "decoupled_weight_decay")
MAXIMIZE = field_index(Hyper, "maximize")
# the scalar state, appended to h by prepare(): the product of mu through step MU_T
MU_PRODUCT = len(numeric_fields(Hyper))
MU_T = MU_PRODUCT + 1

#: scalar state beside ``count``: ``name -> index in h`` (see optim.OptState.scalars)
SCALARS = {"mu_product": MU_PRODUCT}
#: where the step count of the scalar state sits in h
SCALARS_T = MU_T


def validate(h):
    check_lr(h)
    check_unit("b1", h.b1)
    check_unit("b2", h.b2)
    check_eps(h)
    check_weight_decay(h)
    if not h.momentum_decay >= 0.0:
        raise ValueError(f"Invalid momentum_decay value: {h.momentum_decay}")


def prepare(h):
    """``h`` with the scalar state appended: mu_product = 1 through step 0."""
    return (*h, 1.0, 0.0)


def coeffs(h, t, lr, aux, c):
    b1 = h[B1]
    b2 = h[B2]
    psi = h[PSI]
    # torch: beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay)), step a float
    mu = b1 * (1.0 - 0.5 * math.pow(0.96, (t * 1.0) * psi))
    mu_next = b1 * (1.0 - 0.5 * math.pow(0.96, (t + 1.0) * psi))
    if h[MU_T] == t - 1:  # the next step: one more factor
        prod = h[MU_PRODUCT] * mu
    elif h[MU_T] == t:  # the same step again (a rejected step, retried)
        prod = h[MU_PRODUCT]
    else:  # a jump: the product from the first step, in the same order
        prod = 1.0
        for k in range(1, t + 1):
            prod = prod * (b1 * (1.0 - 0.5 * math.pow(0.96, (k * 1.0) * psi)))
    h[MU_PRODUCT] = prod
    h[MU_T] = t
    c[0] = lr * (1.0 - mu) / (1.0 - prod)
    c[1] = lr * mu_next / (1.0 - prod * mu_next)
    c[2] = 1.0 / math.sqrt(1.0 - math.pow(b2, t * 1.0))
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
    d = math.sqrt(v) * c[2] + c[3]
    x[i] = xi - (c[0] * gi + c[1] * m) / d


KERNELS = {"nadam": Kernel(elem, coeffs, ("exp_avg", "exp_avg_sq"))}


def kernel_key(h):
    return "nadam"


def slot_init(h):
    return {}
