r"""Plain (stochastic) gradient descent.

.. math::

    g_t \leftarrow g_t + \lambda x_{t-1}, \qquad x_t = x_{t-1} - \eta\, g_t

Defaults: ``learning_rate=1e-3``, ``weight_decay=0``.  Same as
``torch.optim.SGD(momentum=0)``; the lecture's "Vanilla SGD" (Robbins & Monro
1951).
"""

from typing import NamedTuple

from ._base import SIGN, Kernel, check_lr, check_weight_decay, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    maximize: bool = False


LR = field_index(Hyper, "learning_rate")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr
    c[1] = h[WD]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    x[i] = x[i] - c[0] * gi


KERNELS = {"sgd": Kernel(elem, coeffs, ())}


def kernel_key(h):
    return "sgd"


def slot_init(h):
    return {}
