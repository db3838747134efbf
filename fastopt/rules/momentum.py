r"""Gradient descent with heavy-ball momentum (Polyak 1964), torch's form.

.. math::

    b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t, \qquad
    x_t = x_{t-1} - \eta\, b_t

Defaults: ``learning_rate=1e-3``, ``momentum=0.9``, ``dampening=0``,
``weight_decay=0`` (coupled: :math:`g \leftarrow g + \lambda x`).

Notes
-----
This is ``torch.optim.SGD(momentum=mu, dampening=tau)``: the first buffer is
the gradient itself (no dampening on step 1).  With a constant learning rate
it equals the lecture's :math:`v_{t+1} = \alpha f'(\theta_t) + \gamma v_t,\;
\theta_{t+1} = \theta_t - v_{t+1}` with :math:`v = \eta b`, :math:`\gamma=\mu`.
"""

from typing import NamedTuple

from ._base import SIGN, Kernel, check_closed_unit, check_lr, check_weight_decay, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-3
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 0.0
    maximize: bool = False


MU = field_index(Hyper, "momentum")
DAMP = field_index(Hyper, "dampening")
WD = field_index(Hyper, "weight_decay")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    if not h.momentum >= 0.0:
        raise ValueError(f"Invalid momentum value: {h.momentum}")
    check_closed_unit("dampening", h.dampening)
    check_weight_decay(h)


def coeffs(h, t, lr, aux, c):
    c[0] = lr
    c[1] = h[WD]
    # step 1: b = 0*0 + 1*g = g exactly, so no branch in the element loop
    c[2] = 0.0 if t == 1 else h[MU]
    # momentum = 0 is plain SGD and ignores dampening, as in torch (its SGD
    # keeps no buffer then); without this the step would be (1 - tau) g
    c[3] = 1.0 if t == 1 or h[MU] == 0.0 else 1.0 - h[DAMP]
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


def elem(i, x, g, S, c):
    gi = c[SIGN] * g[i] + c[1] * x[i]
    b = c[2] * S[0, i] + c[3] * gi
    S[0, i] = b
    x[i] = x[i] - c[0] * b


KERNELS = {"momentum": Kernel(elem, coeffs, ("momentum_buffer",))}


def kernel_key(h):
    return "momentum"


def slot_init(h):
    return {}
