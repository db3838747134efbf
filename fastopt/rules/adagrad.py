r"""AdaGrad (Duchi, Hazan & Singer 2011), torch's form.

.. math::

    S_t = S_{t-1} + g_t^2, \qquad
    x_t = x_{t-1} - \frac{\eta}{1 + (t-1)\,\delta}\,\frac{g_t}{\sqrt{S_t} + \epsilon}

Defaults: ``learning_rate=1e-2``, ``lr_decay=0`` (:math:`\delta`),
``initial_accumulator_value=0`` (:math:`S_0`), ``eps=1e-10``,
``weight_decay=0`` (coupled).

Notes
-----
eps sits outside the square root, as in ``torch.optim.Adagrad``; the lecture
writes :math:`v = \alpha f'/\sqrt{r}` with no eps.
"""

import math
from typing import NamedTuple

from ._base import SIGN, Kernel, check_eps, check_lr, check_weight_decay, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-2
    lr_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    weight_decay: float = 0.0
    maximize: bool = False


DECAY = field_index(Hyper, "lr_decay")
EPS = field_index(Hyper, "eps")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    if not h.lr_decay >= 0.0:
        raise ValueError(f"Invalid lr_decay value: {h.lr_decay}")
    if not h.initial_accumulator_value >= 0.0:
        raise ValueError(f"Invalid initial_accumulator_value value: {h.initial_accumulator_value}")
    check_eps(h)
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr / (1.0 + (t - 1) * h[DECAY])
    c[1] = h[WD]
    c[2] = h[EPS]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    s = S[0, i] + gi * gi
    S[0, i] = s
    x[i] = x[i] - c[0] * (gi / (math.sqrt(s) + c[2]))


KERNELS = {"adagrad": Kernel(elem, coeffs, ("sum",))}


def kernel_key(h):
    return "adagrad"


def slot_init(h):
    return {"sum": h.initial_accumulator_value}
