r"""Resilient backpropagation: Rprop (Riedmiller & Braun 1993) and the
variants of Igel & Hüsken (2000).

Each weight has its own step size :math:`\Delta`, adapted from the sign of
:math:`g_t g_{t-1}`:

.. math::

    \Delta_t = \operatorname{clip}\bigl(\Delta_{t-1}\cdot
        \begin{cases} \eta^+ & g_t g_{t-1} > 0 \\ \eta^- & g_t g_{t-1} < 0 \\
        1 & \text{otherwise}\end{cases},\ \Delta_{\min}, \Delta_{\max}\bigr),
    \qquad x_t = x_{t-1} - \operatorname{sign}(g_t)\,\Delta_t

Defaults: ``learning_rate=1e-2`` (the initial :math:`\Delta`),
``eta_minus=0.5``, ``eta_plus=1.2``, ``min_step=1e-6``, ``max_step=50``,
``variant="irprop-"``.

Variants (Igel & Hüsken 2000, "Improving the Rprop learning algorithm"):

``"irprop-"`` (default; ``torch.optim.Rprop``)
    on a sign change the gradient is set to 0: no move this step and no
    adaptation on the next.
``"rprop-"``
    the lecture's slide: adapt and move by the sign, nothing else.
``"rprop+"``
    Riedmiller & Braun's weight backtracking: on a sign change undo the
    previous move of that weight and set its gradient to 0.
``"irprop+"``
    backtrack only when the objective value went up since the previous step;
    needs the objective value at every step (``opt.step(..., value=f)``;
    :func:`fastopt.minimize` passes it).

Notes
-----
The step starts at ``learning_rate`` and is clipped on every step, the first
included (torch).  Rprop is a full-batch method: minibatch noise flips signs
and breaks the adaptation (the lecture's "Problems with Rprop"), so
:func:`fastopt.minimize` warns when it is used with ``batch_size``.  There is
no ``weight_decay`` (torch has none either).  Learning-rate schedules do not
apply: ``learning_rate`` only sets the initial step.
"""

import math
from typing import NamedTuple

from ._base import SIGN, Kernel, check_choice, check_lr, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-2
    eta_minus: float = 0.5
    eta_plus: float = 1.2
    min_step: float = 1e-6
    max_step: float = 50.0
    variant: str = "irprop-"
    maximize: bool = False


VARIANTS = ("irprop-", "rprop-", "rprop+", "irprop+")
ETA_MINUS = field_index(Hyper, "eta_minus")
ETA_PLUS = field_index(Hyper, "eta_plus")
MIN_STEP = field_index(Hyper, "min_step")
MAX_STEP = field_index(Hyper, "max_step")

MAXIMIZE = field_index(Hyper, "maximize")


def validate(h):
    check_lr(h)
    if not 0.0 < h.eta_minus < 1.0:
        raise ValueError(f"Invalid eta_minus value: {h.eta_minus} (need 0 < eta_minus < 1)")
    if not h.eta_plus > 1.0:
        raise ValueError(f"Invalid eta_plus value: {h.eta_plus} (need eta_plus > 1)")
    if not 0.0 <= h.min_step <= h.max_step:
        raise ValueError(
            f"Invalid min_step/max_step values: {h.min_step}, {h.max_step} "
            "(need 0 <= min_step <= max_step)"
        )
    check_choice("variant", h.variant, VARIANTS)


def coeffs(h, t, lr, aux, c):
    c[0] = h[ETA_MINUS]
    c[1] = h[ETA_PLUS]
    c[2] = h[MIN_STEP]
    c[3] = h[MAX_STEP]
    # irprop+: 1 when the error went up since the previous step; aux is the
    # sign of f's change, and the error is -f when maximizing
    up = -aux if h[MAXIMIZE] != 0.0 else aux
    c[4] = 1.0 if up > 0.0 else 0.0
    c[5] = 1.0
    c[6] = 0.0
    c[SIGN] = -1.0 if h[MAXIMIZE] != 0.0 else 1.0


# The sign logic lives in scalar-only helpers (Kernel.helpers): compiled apart
# from the arrays and inlined by LLVM, it becomes selects and the loop has no
# per-element reference counting (20-90 ns per element when the element
# function itself branched).  Constants come from c so float32 stays float32.


def _adapt(s, step, eta_minus, eta_plus, one, min_step, max_step):
    """The step scaled by eta+ / eta- / 1 by the sign of ``s``, then clipped."""
    f = eta_plus if s > 0 else one  # flat selects, not nested ones: they vectorise
    f = eta_minus if s < 0 else f
    step = step * f
    step = step if step > min_step else min_step
    return step if step < max_step else max_step


def _signed(gi, step, zero):
    """sign(gi) * step, exactly (0 for gi == 0)."""
    return math.copysign(step, gi) if gi != 0 else zero


def _irprop_minus(gi, prev, step, xi, eta_minus, eta_plus, one, min_step, max_step, zero):
    s = gi * prev
    step = _adapt(s, step, eta_minus, eta_plus, one, min_step, max_step)
    gi = zero if s < 0 else gi  # no move, and no adaptation on the next step
    return xi - _signed(gi, step, zero), step, gi


def _rprop_minus(gi, prev, step, xi, eta_minus, eta_plus, one, min_step, max_step, zero):
    step = _adapt(gi * prev, step, eta_minus, eta_plus, one, min_step, max_step)
    return xi - _signed(gi, step, zero), step, gi


def _rprop_plus(gi, prev, step, xi, undo, eta_minus, eta_plus, one, min_step, max_step, zero):
    # Riedmiller & Braun 1993 with weight backtracking; Igel & Hüsken's
    # iRprop+ passes undo = 0 when the error went down.  On a sign change:
    # shrink the step, take back the previous move, zero the gradient.
    # The previous move needs no slot of its own: it was -sign(prev) * step
    # with the prev and step the previous update stored (a backtracking
    # update stores prev = 0, and then no sign change can follow), so this
    # recomputes it bit for bit and the kernel moves 7 words per element, as
    # Adam does, not 9.
    s = gi * prev
    dw = -_signed(prev, step, zero)
    step = _adapt(s, step, eta_minus, eta_plus, one, min_step, max_step)
    back = s < 0
    xi = xi - dw * undo if back else xi - _signed(gi, step, zero)
    return xi, step, (zero if back else gi)


def elem_irprop_minus(i, x, g, S, c):
    xi, step, gi = _irprop_minus(
        c[SIGN] * g[i], S[0, i], S[1, i], x[i], c[0], c[1], c[5], c[2], c[3], c[6]
    )
    x[i] = xi
    S[1, i] = step
    S[0, i] = gi


def elem_rprop_minus(i, x, g, S, c):
    xi, step, gi = _rprop_minus(
        c[SIGN] * g[i], S[0, i], S[1, i], x[i], c[0], c[1], c[5], c[2], c[3], c[6]
    )
    x[i] = xi
    S[1, i] = step
    S[0, i] = gi


def elem_rprop_plus(i, x, g, S, c):
    gi = c[SIGN] * g[i]
    xi, step, gi = _rprop_plus(gi, S[0, i], S[1, i], x[i], c[5], c[0], c[1], c[5], c[2], c[3],
                               c[6])  # fmt: skip
    x[i] = xi
    S[1, i] = step
    S[0, i] = gi


def elem_irprop_plus(i, x, g, S, c):
    # c[4] is 1 when the objective went up since the previous step, else 0
    gi = c[SIGN] * g[i]
    xi, step, gi = _rprop_plus(gi, S[0, i], S[1, i], x[i], c[4], c[0], c[1], c[5], c[2], c[3],
                               c[6])  # fmt: skip
    x[i] = xi
    S[1, i] = step
    S[0, i] = gi


_H = (_adapt, _signed)
KERNELS = {
    "irprop-": Kernel(elem_irprop_minus, coeffs, ("prev", "step_size"), _H + (_irprop_minus,)),
    "rprop-": Kernel(elem_rprop_minus, coeffs, ("prev", "step_size"), _H + (_rprop_minus,)),
    "rprop+": Kernel(elem_rprop_plus, coeffs, ("prev", "step_size"), _H + (_rprop_plus,)),
    "irprop+": Kernel(elem_irprop_plus, coeffs, ("prev", "step_size"), _H + (_rprop_plus,)),
}

#: the variant that needs the objective value at every step
NEEDS_VALUE = ("irprop+",)
#: a step can leave x unchanged (iRprop-/iRprop+ zero the gradient where its
#: sign changed; all at once is common in few dimensions): the drivers then
#: do not evaluate the same point again
ZERO_STEPS = True


def kernel_key(h):
    return h.variant


def slot_init(h):
    return {"step_size": h.learning_rate}
