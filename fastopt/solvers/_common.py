"""Plumbing shared by the second-order solvers.

Every solver writes its loop once, as a plain Python function over NumPy
arrays and scalars that numba can also compile.  With Python callables the
function runs as Python; with ``@njit`` callables it is compiled by
:func:`fastopt._jit.user_loop` (lazily, on first use) and runs in nopython
mode.  Helpers the loops call are made callable from both worlds by
:func:`dual`, so there is one source and the two paths give the same iterates.

The loops run at most ``nsteps`` iterations and hand their state back, so
:func:`drive` can run them all at once, or one iteration at a time when a
callback or ``return_all`` needs Python between iterations.
"""

import functools
import math

import numpy as np
from numba.core.registry import CPUDispatcher
from numba.extending import overload

from .. import _jit
from .._batching import check_batch_args, seed_state, shuffle
from .._status import CALLBACK, NONFINITE_F, NONFINITE_G

#: a loop's status while it still has iterations to run
RUNNING = -1

#: ``nsteps`` for a chunk that runs to the end (larger than any maxiter)
ALL_STEPS = 2**62

#: sqrt(machine epsilon): the relative step of the finite-difference products
SQRT_EPS = math.sqrt(np.finfo(np.float64).eps)


def dual(fn):
    """Make the plain Python function ``fn`` callable from nopython code too.

    The function is registered as its own numba ``overload``: Python calls
    run it as Python, and a compiled loop that calls it compiles the same
    source (``take_args`` in :mod:`fastopt._batching` does the same with a
    generated body).  Nothing compiles until a compiled loop is typed.

    Optional inputs are passed as None and tested with ``if arg is None``:
    numba resolves that test on an argument at compile time and drops the
    dead branch, so an absent ``hessp`` needs neither a flag nor a stand-in
    function, and each case compiles only its own code.
    """
    typer = functools.wraps(fn)(lambda *args, **kws: fn)
    overload(fn, jit_options={"error_model": _jit.USER["error_model"]})(typer)
    return fn


@_jit.kernel
def copy_into(dst, src):
    """``dst[:n] = src`` for 1-D arrays, ``n = len(src)``.

    In the compiled loops a slice assignment from an array makes numba
    compile its shape-mismatch error message (string formatting, about 2 s
    per process); this cached loop avoids that.
    """
    for i in range(src.shape[0]):
        dst[i] = src[i]


@_jit.kernel
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


@_jit.kernel
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


@_jit.kernel
def dot_diff(p, a, b):
    """``p . (a - b)`` without a temporary."""
    out = 0.0
    for i in range(p.shape[0]):
        out += p[i] * (a[i] - b[i])
    return out


@_jit.kernel
def all_finite(a):
    """True when every entry of ``a`` is finite."""
    for i in range(a.shape[0]):
        if not math.isfinite(a[i]):
            return False
    return True


def is_jitted(fn):
    """True when ``fn`` is a numba CPU dispatcher (callable from nopython code)."""
    return isinstance(fn, CPUDispatcher)


class LazyLoop:
    """A loop function and its compiled version, compiled on first use.

    Importing a solver compiles nothing; the first compiled run pays the
    compile time (the loop takes the user's functions as arguments, so numba
    cannot cache it on disk).
    """

    def __init__(self, fn):
        self.python = fn
        self._compiled = None

    @property
    def compiled(self):
        if self._compiled is None:
            self._compiled = _jit.user_loop(self.python)
        return self._compiled

    def get(self, compiled):
        return self.compiled if compiled else self.python


class ShapeChecked:
    """Python-mode wrapper that checks a product's shape on its first call.

    Later calls only convert the result to a float64 array; the check costs
    one attribute test per call.
    """

    def __init__(self, fn, n, name):
        self.fn = fn
        self.n = n
        self.name = name
        self.checked = False

    def __call__(self, x, v, *args):
        out = np.asarray(self.fn(x, v, *args), dtype=np.float64)
        if not self.checked:
            check_product_shape(out, self.n, self.name)
            self.checked = True
        return out


def check_product_shape(out, n, name):
    """Raise ValueError unless ``out`` has shape ``(n,)``."""
    shape = np.shape(out)
    if shape != (n,):
        raise ValueError(f"{name} must return an array of shape ({n},); got shape {shape}")


def prepare_product(fn, compiled, x, args, name):
    """The product callable the loop receives, checked for its output shape.

    Python mode wraps ``fn`` in :class:`ShapeChecked` (the first product in
    the loop is checked).  Compiled mode cannot raise a readable error from
    inside the loop, so the product is evaluated once here, from Python, at
    ``x`` along a unit vector; returns ``(product, extra_evaluations)``.
    """
    n = x.shape[0]
    if not compiled:
        return ShapeChecked(fn, n, name), 0
    v = np.full(n, 1.0 / math.sqrt(max(n, 1)))
    check_product_shape(fn(x, v, *args), n, name)
    return fn, 1


def reject_bounds(obj, method):
    """Raise ValueError when bounds were given to a method that has none."""
    if obj.lb is not None or obj.ub is not None:
        raise ValueError(f"method '{method}' does not support bounds")


def start_point(obj):
    """A float64 copy of ``obj.x0`` (the solvers compute in float64)."""
    return np.array(obj.x0, dtype=np.float64)


def initial_fg(obj, x, args):
    """``(f, g)`` at ``x`` as a Python float and a float64 array."""
    f, g = obj.fg(x, *args)
    return float(f), np.array(g, dtype=np.float64)


def nonfinite_fg(f, g):
    """The status for a non-finite ``f`` or ``g`` (0 when both are finite)."""
    if not math.isfinite(f):
        return NONFINITE_F
    if not all_finite(g):
        return NONFINITE_G
    return 0


def drive(advance, current, obj, x0):
    """Run a chunked loop with Python between iterations when needed.

    Parameters
    ----------
    advance : callable
        ``advance(nsteps) -> status`` runs at most ``nsteps`` iterations and
        returns :data:`RUNNING` when all of them ran without a stop.
    current : callable
        ``current() -> (x, f, g, nit)``, the state after the last iteration.
    obj : Objective
        Supplies ``callback`` and ``return_all``.
    x0 : ndarray
        The start, first entry of ``allvecs``.

    Returns
    -------
    status : int
    allvecs : list of ndarray or None
    """
    if obj.callback is None and not obj.return_all:
        return advance(ALL_STEPS), None
    allvecs = [x0.copy()] if obj.return_all else None
    while True:
        status = advance(1)
        if status != RUNNING:
            return status, allvecs
        x, f, g, nit = current()
        if allvecs is not None:
            allvecs.append(x.copy())
        if obj.callback is not None:
            try:
                obj.callback(x.copy(), f, g.copy(), nit)
            except StopIteration:
                return CALLBACK, allvecs


@dual
def hvp(prod, fg, x, v, gx, args):
    r"""A curvature product ``G v``: ``prod(x, v, *args)``, or a finite difference.

    With ``prod`` None: the forward difference of the gradient
    :math:`(\nabla f(x + e v) - \nabla f(x))/e` with
    :math:`e = \sqrt{\epsilon}\,(1 + \|x\|)/\|v\|`, a step relative to
    the size of ``x`` and independent of the length of ``v`` (``gx`` is the
    gradient at ``x`` on the same ``args``).  In compiled loops the None test
    is resolved at compile time, so each case compiles only its own branch.
    """
    if prod is None:
        e = SQRT_EPS * (1.0 + math.sqrt(float(x.dot(x)))) / math.sqrt(float(v.dot(v)))
        _, g_plus = fg(lincomb(1.0, x, e, v), *args)
        return fd_quotient(g_plus, gx, e)
    return prod(x, v, *args)


def result(x, f, g, status, nit, nfev, njev, nhev, allvecs):
    """The solver's result dict (``allvecs`` only when it was kept)."""
    out = {
        "x": x,
        "fun": float(f),
        "jac": g,
        "status": int(status),
        "nit": int(nit),
        "nfev": int(nfev),
        "njev": int(njev),
        "nhev": int(nhev),
    }
    if allvecs is not None:
        out["allvecs"] = allvecs
    return out


@dual
def next_batch(perm, pos, batch_size, state, do_shuffle):
    """The next minibatch of sample indices, reshuffling at each epoch start.

    ``pos`` is the start of the batch in ``perm``; an epoch is
    ``ceil(N / batch_size)`` batches, the last one possibly short (as in the
    first-order minibatch driver).  Returns ``(idx, pos, state, new_epoch)``;
    ``new_epoch`` is True when this batch starts an epoch.
    """
    n = perm.shape[0]
    new_epoch = pos >= n or pos == 0
    if pos >= n:
        pos = 0
    if pos == 0 and do_shuffle:
        # np.uint64(): called from Python the kernel returns an int, which the
        # next call would type as int64 (signed shifts: another stream).
        state = np.uint64(shuffle(perm, state))
    stop = min(pos + batch_size, n)
    idx = perm[pos:stop].copy()
    return idx, stop, state, new_epoch


def batch_setup(obj, args, salt):
    """Permutation, generator state and sample count for minibatch mode.

    ``salt`` separates the generator streams of different uses (curvature
    batches, gradient batches) that share ``obj.seed``.
    """
    n_samples = check_batch_args(args)
    perm = np.arange(n_samples, dtype=np.int64)
    state = seed_state(obj.seed) ^ np.uint64(salt)
    return perm, state, n_samples


def use_compiled(obj, *extra):
    """Whether to run the compiled loop.

    ``obj.compiled`` promises ``@njit`` ``fun``/``fg``/``hessp``; any other
    callable the loop receives (``extra``, e.g. a Gauss-Newton product given
    as an option) must be jitted too, else the Python loop runs (numba
    dispatchers are callable from Python, so nothing is lost but speed).
    """
    if not obj.compiled:
        return False
    fns = [obj.fun, obj.fg] + ([obj.hessp] if obj.hessp is not None else [])
    fns += [fn for fn in extra if fn is not None]
    return all(is_jitted(fn) for fn in fns)
