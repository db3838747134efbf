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

from typing import NamedTuple

from ._base import Kernel, check_choice, check_lr, field_index


class Hyper(NamedTuple):
    learning_rate: float = 1e-2
    eta_minus: float = 0.5
    eta_plus: float = 1.2
    min_step: float = 1e-6
    max_step: float = 50.0
    variant: str = "irprop-"


VARIANTS = ("irprop-", "rprop-", "rprop+", "irprop+")
ETA_MINUS = field_index(Hyper, "eta_minus")
ETA_PLUS = field_index(Hyper, "eta_plus")
MIN_STEP = field_index(Hyper, "min_step")
MAX_STEP = field_index(Hyper, "max_step")


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
    c[4] = aux  # irprop+: 1 when f went up since the previous step


def elem_irprop_minus(i, x, g, S, c):
    gi = g[i]
    s = gi * S[0, i]
    step = S[1, i]
    if s > 0:
        step = step * c[1]
    elif s < 0:
        step = step * c[0]
        gi = gi - gi  # a zero of gi's dtype (gi * 0 is float64 in numba); no move next
    step = min(max(step, c[2]), c[3])
    S[1, i] = step
    if gi > 0:
        x[i] = x[i] - step
    elif gi < 0:
        x[i] = x[i] + step
    S[0, i] = gi


def elem_rprop_minus(i, x, g, S, c):
    gi = g[i]
    s = gi * S[0, i]
    step = S[1, i]
    if s > 0:
        step = step * c[1]
    elif s < 0:
        step = step * c[0]
    step = min(max(step, c[2]), c[3])
    S[1, i] = step
    if gi > 0:
        x[i] = x[i] - step
    elif gi < 0:
        x[i] = x[i] + step
    S[0, i] = gi


def elem_rprop_plus(i, x, g, S, c):
    # Riedmiller & Braun 1993 (Igel & Hüsken's Rprop+): slots prev, step, dw
    gi = g[i]
    s = gi * S[0, i]
    step = S[1, i]
    if s < 0:
        S[1, i] = min(max(step * c[0], c[2]), c[3])
        x[i] = x[i] - S[2, i]  # undo the previous move of this weight
        S[0, i] = gi - gi
        return
    if s > 0:
        step = step * c[1]
    step = min(max(step, c[2]), c[3])
    S[1, i] = step
    dw = gi - gi
    if gi > 0:
        dw = -step
    elif gi < 0:
        dw = step
    x[i] = x[i] + dw
    S[2, i] = dw
    S[0, i] = gi


def elem_irprop_plus(i, x, g, S, c):
    # Igel & Hüsken 2000: backtrack only if the error went up (c[4] == 1)
    gi = g[i]
    s = gi * S[0, i]
    step = S[1, i]
    if s < 0:
        S[1, i] = min(max(step * c[0], c[2]), c[3])
        if c[4] > 0:
            x[i] = x[i] - S[2, i]
        S[0, i] = gi - gi
        return
    if s > 0:
        step = step * c[1]
    step = min(max(step, c[2]), c[3])
    S[1, i] = step
    dw = gi - gi
    if gi > 0:
        dw = -step
    elif gi < 0:
        dw = step
    x[i] = x[i] + dw
    S[2, i] = dw
    S[0, i] = gi


KERNELS = {
    "irprop-": Kernel(elem_irprop_minus, coeffs, ("prev", "step_size")),
    "rprop-": Kernel(elem_rprop_minus, coeffs, ("prev", "step_size")),
    "rprop+": Kernel(elem_rprop_plus, coeffs, ("prev", "step_size", "delta")),
    "irprop+": Kernel(elem_irprop_plus, coeffs, ("prev", "step_size", "delta")),
}

#: the variant that needs the objective value at every step
NEEDS_VALUE = ("irprop+",)


def kernel_key(h):
    return h.variant


def slot_init(h):
    return {"step_size": h.learning_rate}
