"""Per-iteration bookkeeping shared by every driver, as cached kernels.

One call does the projection onto the bounds, the finiteness checks of
``x``, ``f`` and ``g``, the copy of the last good iterate and the gradient's
inf-norm: done separately in NumPy these cost several microseconds per
iteration, which is the Python driver's whole budget.
"""

import math

import numpy as np

from .. import _jit
from .._status import NONFINITE_F, NONFINITE_G, NONFINITE_X


@_jit.borrowing_kernel
def copy_into(dst, src):
    """``dst[:] = src`` as a loop: numba's slice assignment compiles an error
    formatter that costs ~2 s of compile time in every user loop it is inlined
    into."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@_jit.borrowing_kernel
def project(x, lb, ub):
    """Clip ``x`` into ``[lb, ub]`` in place."""
    for i in range(x.shape[0]):
        if x[i] < lb[i]:
            x[i] = lb[i]
        elif x[i] > ub[i]:
            x[i] = ub[i]


@_jit.kernel
def accept(x, f, g, x_good, g_good):
    """Check the new point; keep it if finite.

    Returns ``(status, gnorm)``: status 0 when ``x``, ``f`` and ``g`` are all
    finite (then ``x_good, g_good <- x, g`` and ``gnorm = max|g|``), else the
    non-finite status, with ``x`` reset to ``x_good``.

    One ``return``, at the end: the compiled driver writes this body out in
    its loop (``drivers.first_order``).
    """
    n = x.shape[0]
    status = 0
    for i in range(n):
        if not math.isfinite(x[i]):
            status = NONFINITE_X
            break
    if status == 0 and not math.isfinite(f):
        status = NONFINITE_F
    if status == 0:
        for i in range(n):
            if not math.isfinite(g[i]):
                status = NONFINITE_G
                break
    gnorm = np.inf
    if status != 0:
        for i in range(n):
            x[i] = x_good[i]
    else:
        gnorm = 0.0
        for i in range(n):
            x_good[i] = x[i]
            g_good[i] = g[i]
            a = abs(g[i])
            if a > gnorm:
                gnorm = a
    return status, gnorm


@_jit.borrowing_kernel
def finite_x(x):
    """0 if every element of ``x`` is finite, else NONFINITE_X."""
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return NONFINITE_X
    return 0


@_jit.kernel
def finite_fg(f, g):
    """0 if ``f`` and ``g`` are finite, else the non-finite status."""
    if not math.isfinite(f):
        return NONFINITE_F
    for i in range(g.shape[0]):
        if not math.isfinite(g[i]):
            return NONFINITE_G
    return 0


@_jit.borrowing_kernel
def projected_inf_norm(x, g, lb, ub):
    """Inf-norm of the projected gradient ``P(x - g) - x`` (L-BFGS-B's ``projgr``).

    Each component is the gradient clipped to how far ``x`` can move inside
    :math:`[l_i, u_i]`: zero for a variable on a bound whose gradient points
    out of the box, so the ``gtol`` test stops at a minimum on a bound (scipy's
    test) instead of running to ``maxiter``.  Computed from ``g`` directly (no
    rounding of ``x - g``); NaN if ``g`` holds a NaN.  Shared by the first-order
    drivers and L-BFGS-B.
    """
    out = 0.0
    for i in range(x.shape[0]):
        gi = g[i]
        if gi < 0.0:
            gi = max(x[i] - ub[i], gi)
        else:
            gi = min(x[i] - lb[i], gi)
        v = abs(gi)
        if not v <= out:
            out = v
            if math.isnan(v):
                break
    return out


@_jit.borrowing_kernel
def same_point(x, y):
    """True when ``x`` and ``y`` hold the same values: a step that did not move."""
    for i in range(x.shape[0]):
        if x[i] != y[i]:
            return False
    return True
