r"""Nesterov accelerated gradient (Sutskever, Martens, Dahl & Hinton 2013).

.. math::

    b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + g_t, \qquad
    x_t = x_{t-1} - \eta\,(g_t + \mu\, b_t)

Defaults: ``learning_rate=1e-3``, ``momentum=0.9``, ``weight_decay=0``.

Notes
-----
Written in the look-ahead variable :math:`p = x + \mu v` (Sutskever 2013;
Bengio et al. 2013): the stored and returned ``x`` is the look-ahead point and
the gradient is taken there, so NAG costs one gradient per step like the other
rules.  Identical to ``torch.optim.SGD(momentum=mu, nesterov=True)``.  The
lecture's picture ("first make a big jump, then correct") is the same method
in the original variable.
"""

from typing import NamedTuple

from ._base import SIGN, Kernel, check_lr, check_weight_decay, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    maximize: bool = False


MU = field_index(Hyper, "momentum")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    if not h.momentum > 0.0:
        raise ValueError(f"Invalid momentum value: {h.momentum} (Nesterov needs momentum > 0)")
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr
    c[1] = h[WD]
    c[2] = 0.0 if t == 1 else h[MU]
    c[3] = h[MU]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    b = c[2] * S[0, i] + gi
    S[0, i] = b
    x[i] = x[i] - c[0] * (gi + c[3] * b)


KERNELS = {"nag": Kernel(elem, coeffs, ("momentum_buffer",))}


def kernel_key(h):
    return "nag"


def slot_init(h):
    return {}
