"""Vector kernels the solver loops share, one compiled reduction for every path.

Each is a cached kernel (:func:`fastopt._jit.kernel`; those that allocate
nothing borrow their arrays, :func:`fastopt._jit.borrowing_kernel`): a
Python-driven loop calls the machine code directly, and a compiled loop calls
(or inlines, see :class:`~fastopt.solvers._lazy_loop.LazyLoop`) the same
source.  In
particular :func:`dot` is never NumPy's BLAS: OpenBLAS picks a kernel per CPU
(Haswell, SkylakeX, ...) whose partial sums round differently, so a BLAS dot
in one path and a loop in the other gave different iterates on AVX-512
machines.  Both paths summing in :func:`dot`'s fixed order makes the
Python and compiled loops agree bit for bit by construction, on every CPU.
"""

import math

import numpy as np

from .. import _jit


@_jit.borrowing_kernel
def copy_into(dst, src):
    """``dst[:n] = src`` for 1-D arrays, ``n = len(src)``.

    In the compiled loops a slice assignment from an array makes numba
    compile its shape-mismatch error message (string formatting, about 2 s
    per process); this cached loop avoids that.
    """
    for i in range(src.shape[0]):
        dst[i] = src[i]


@_jit.borrowing_kernel
def inf_norm(a):
    """``max(abs(a))`` (NaN if ``a`` holds a NaN).

    A cached kernel: cheaper than ``np.abs(a).max()`` from Python, and numba's
    own ``max`` takes about a second to compile into every process.
    """
    out = 0.0
    for i in range(a.shape[0]):
        v = abs(a[i])
        if not v <= out:
            out = v
            if math.isnan(v):
                break
    return out


@_jit.borrowing_kernel
def max_abs_diff(a, b):
    """``max(abs(a - b))`` without a temporary."""
    out = 0.0
    for i in range(a.shape[0]):
        v = abs(a[i] - b[i])
        if v > out:
            out = v
    return out


@_jit.kernel
def lincomb(a, x, b, y):
    """``a * x + b * y`` as a new array.

    For the small vectors of a Python-driven loop one kernel call (about
    0.3 us) replaces two NumPy operations (about 1.1 us), and the compiled
    loop calls the same machine code.
    """
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = a * x[i] + b * y[i]
    return out


@_jit.borrowing_kernel
def lincomb_into(out, a, x, b, y):
    """``out[:] = a * x + b * y`` (``out`` may be ``x`` or ``y``)."""
    for i in range(x.shape[0]):
        out[i] = a * x[i] + b * y[i]


@_jit.borrowing_kernel
def scale_into(out, a, x):
    """``out[:] = a * x``."""
    for i in range(x.shape[0]):
        out[i] = a * x[i]


@_jit.kernel
def scale(a, x):
    """``a * x`` as a new array."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = a * x[i]
    return out


@_jit.kernel
def fd_quotient(a, b, e):
    """``(a - b) / e`` as a new array: the finite-difference quotient."""
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = (a[i] - b[i]) / e
    return out


@_jit.borrowing_kernel
def dot_diff(p, a, b):
    """``p . (a - b)`` without a temporary."""
    out = 0.0
    for i in range(p.shape[0]):
        out += p[i] * (a[i] - b[i])
    return out


@_jit.borrowing_kernel
def all_finite(a):
    """True when every entry of ``a`` is finite."""
    for i in range(a.shape[0]):
        if not math.isfinite(a[i]):
            return False
    return True


#: independent partial sums in :func:`dot`: enough to hide the add latency
#: and let LLVM put them in vector lanes, in a fixed order (no reassociation)
DOT_LANES = 8


def _dot(a, b):
    """``sum(a * b)`` in a fixed order: 8 partial sums over blocks, then a tree.

    Lane ``j`` adds ``a[i] * b[i]`` for ``i = j mod 8`` in increasing ``i``
    (whole blocks of 8), the lanes combine as ``((s0+s1)+(s2+s3)) +
    ((s4+s5)+(s6+s7))`` and the tail is added last, in order.  No
    ``fastmath``: the order is the source's, so every caller and every CPU
    gets the same bits.
    """
    n = a.shape[0]
    m = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(0, m, 8):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        s4 += a[i + 4] * b[i + 4]
        s5 += a[i + 5] * b[i + 5]
        s6 += a[i + 6] * b[i + 6]
        s7 += a[i + 7] * b[i + 7]
    out = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(m, n):
        out += a[i] * b[i]
    return out


#: ``a . b`` as a float, for Python-driven loops (a cached kernel)
dot = _jit.borrowing_kernel(_dot)
dot.__doc__ = _dot.__doc__

#: the same source inlined into compiled loops (a call into a cached kernel
#: cannot be inlined by LLVM): same operations in the same order, same bits
dot_compiled = _jit.inline(_dot)
