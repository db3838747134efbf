"""The user's functions behind one boundary: copies in, checked values out.

:func:`fastopt.minimize` hands every driver and solver ``fun``/``fg``/``grad``
built here, never the user's callables themselves, so that the scipy calling
conventions (``jac=True``, finite differences) are handled once and two
promises hold on *every* call, not only the first:

- a user function receives a copy of ``x``, never the optimizer's live
  iterate (scipy gh-13740: a function that overwrites or keeps the array it
  is given must not change the run);
- what it returns is checked before compiled code reads it: the value is a
  real scalar (a 0-d or 1-element array is accepted, as scipy does), the
  gradient has ``x``'s shape.  Numba does no bounds checking, so a gradient
  that changed length mid-run would otherwise be read past its end.

With ``@njit`` functions the loops run compiled, and the same checks are
compiled into small glue functions around them (:func:`compiled_functions`):
the gradient's length is compared on every call and a mismatch raises
ValueError out of the compiled loop.  (Compiled code passes the loop's own
arrays: an ``@njit`` function cannot keep a reference to them, and copying
would allocate on every evaluation.)
"""

from collections import OrderedDict

import numpy as np

from ._validation import FD_SCHEMES, check_fg_pair, check_grad, check_value
from .drivers._checks import same_point

#: how many compiled glue functions (and so compiled loops) are kept per
#: process: each holds numba's compiled code (megabytes); a long-lived
#: process that creates objectives in a loop must not grow without bound
GLUE_CACHE_SIZE = 32


class BoundedCache(OrderedDict):
    """A dict of at most ``maxsize`` entries: adding one past that drops the oldest.

    :meth:`get_or_make` also marks an entry as recently used.
    """

    def __init__(self, maxsize):
        super().__init__()
        self.maxsize = maxsize

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        return value


_GLUE = BoundedCache(GLUE_CACHE_SIZE)


# --------------------------------------------------------------------------
# Compiled (@njit) functions: glue with the checks compiled in
# --------------------------------------------------------------------------
def _scalar_overload():
    """``as_scalar(f)`` for nopython code: a float, or the one element of an array.

    Called as Python it returns ``f`` unchanged: its Python callers are the
    solver loops run as Python (:func:`fastopt.solvers.lbfgs._evaluate`),
    whose functions are :func:`python_functions`' and return checked floats.
    """
    from numba.core import types
    from numba.extending import overload

    def as_scalar(f):
        return f

    # _nrt explicit: see fastopt.solvers._lazy_loop.dual
    @overload(as_scalar, jit_options={"error_model": "numpy", "_nrt": True})
    def _as_scalar(f):
        if isinstance(f, types.Array):

            def impl(f):
                if f.size != 1:
                    raise ValueError("fun must return a scalar (a 1-element array at most)")
                return float(np.ravel(f)[0])

            return impl
        if isinstance(f, types.Float | types.Integer | types.Boolean):
            return lambda f: float(f)
        return None

    return as_scalar


as_scalar = _scalar_overload()


def _glue(kind, *fns):
    """A compiled glue function of ``kind`` around the dispatchers ``fns``."""

    def make():
        import numba

        opts = {"error_model": "numpy"}
        if kind == "fg":
            fun, jac = fns

            @numba.njit(**opts)
            def glue(x, *args):
                f = as_scalar(fun(x, *args))
                g = jac(x, *args)
                if g.shape[0] != x.shape[0]:
                    raise ValueError("jac returned an array of another length than x")
                return f, g

        elif kind == "fg_true":
            (fun,) = fns

            @numba.njit(**opts)
            def glue(x, *args):
                f, g = fun(x, *args)
                if g.shape[0] != x.shape[0]:
                    raise ValueError("fun (jac=True) returned a gradient of another length than x")
                return as_scalar(f), g

        elif kind == "f_only":
            (fun,) = fns

            @numba.njit(**opts)
            def glue(x, *args):
                return as_scalar(fun(x, *args)[0])

        elif kind == "f":
            (fun,) = fns

            @numba.njit(**opts)
            def glue(x, *args):
                return as_scalar(fun(x, *args))

        elif kind == "grad":
            (jac,) = fns

            @numba.njit(**opts)
            def glue(x, *args):
                g = jac(x, *args)
                if g.shape[0] != x.shape[0]:
                    raise ValueError("jac returned an array of another length than x")
                return g

        elif kind == "product":
            (prod,) = fns

            @numba.njit(**opts)
            def glue(x, v, *args):
                out = prod(x, v, *args)
                if out.shape[0] != x.shape[0]:
                    raise ValueError("a curvature product returned an array of another length "
                                     "than x")  # fmt: skip
                return out

        elif kind == "diagonal":
            (diag,) = fns

            @numba.njit(**opts)
            def glue(x, *args):
                out = diag(x, *args)
                if out.shape[0] != x.shape[0]:
                    raise ValueError("diagonal returned an array of another length than x")
                return out

        else:  # pragma: no cover
            raise KeyError(kind)
        glue.fastopt_glue = (kind, *fns)  # see _jit.cache_identity
        return glue

    return _GLUE.get_or_make((kind, *fns), make)


def checked_product(fn, kind="product"):
    """``fn`` (an ``@njit`` product or diagonal) with its length checked on every call."""
    return _glue(kind, fn)


def compiled_functions(fun, jac, x, args):
    """``(fun_only, fg, grad, grad_calls_fun, first)`` for ``@njit`` ``fun``/``jac``.

    The user's dispatchers are first called once from Python at ``x`` (a copy)
    so that a wrong return type is a readable TypeError/ValueError here, not a
    numba TypingError when the loop compiles; ``first`` is that ``(f, g)``.
    """
    first = first_values(fun, jac, x, args)
    return (*_GLUE.get_or_make(("functions", fun, jac), lambda: _compiled_set(fun, jac)), first)


def first_values(fun, jac, x, args):
    """``(f, g)`` at ``x`` from the user's ``@njit`` ``fun``/``jac`` called from Python, checked.

    The user's own dispatchers, not the glue around them: they are compiled
    for these types already, where the glue may exist only inside a loop
    loaded from numba's cache (calling it from Python would compile it).
    """
    if jac is True:
        out = check_fg_pair(fun(x.copy(), *args), "fun(x0)")
        return check_value(out[0], "fun(x0)"), check_grad(out[1], x, "fun(x0)[1] (jac=True)")
    return (check_value(fun(x.copy(), *args), "fun(x0)"),
            check_grad(jac(x.copy(), *args), x, "jac(x0)"))  # fmt: skip


def _compiled_set(fun, jac):
    """``(fun_only, fg, grad, grad_calls_fun)``: the glue around ``fun``/``jac``."""
    if jac is True:
        fg = _glue("fg_true", fun)
        return _glue("f_only", fun), fg, _grad_of(fg), True
    return _glue("f", fun), _glue("fg", fun, jac), _glue("grad", jac), False


def _grad_of(fg):
    """An ``@njit`` ``fg(x)[1]`` (for ``jac=True``: the gradient alone)."""
    from ._objective import grad_from_fg

    return grad_from_fg(fg, True)


# --------------------------------------------------------------------------
# Python functions: wrappers that copy x and check every return value
# --------------------------------------------------------------------------
#: up to this length the memo compares bytes (see _same_input)
_BYTES_COMPARE = 256


def _same_input(x, y):
    """Whether ``x`` and ``y`` (one shape and dtype) are the same input to a user function.

    Short vectors compare their bytes: a few hundred nanoseconds, and no
    kernel to compile on a process's first call (the compiled
    ``same_point`` costs ~0.1 s of a cold start).  Bytes and values differ
    only for NaN (equal bits: the same input, so the same value) and signed
    zeros (-0.0 and 0.0: evaluated again).  Longer ones use the kernel.
    """
    if x.shape[0] <= _BYTES_COMPARE:
        return x.tobytes() == y.tobytes()
    return same_point(x, y)


class _Memo:
    """The last point a user function was called at, and what it returned.

    A loop that asks for ``f`` and then ``g`` (or ``f`` again after a zero
    step, as Rprop makes) at the same point gets the stored values: no
    point is evaluated twice in a row (scipy's ``test_duplicate_evaluations``).
    """

    __slots__ = ("x", "args", "value", "valid")

    def __init__(self, x):
        self.x = np.empty_like(x)
        self.args = ()
        self.value = None
        self.valid = False

    def get(self, x, args):
        # the same arguments too: a minibatch is a new array each step
        if self.valid and len(args) == len(self.args) and _same_input(x, self.x):
            if all(a is b for a, b in zip(args, self.args, strict=True)):
                return self.value
        return None

    def put(self, x, args, value):
        self.x[:] = x
        self.args = args
        self.value = value
        self.valid = True
        return value


def _memo_value(fun, x, counter, value):
    """``fun_only(x, *a)``: the user's value at a copy of ``x``, counted and remembered."""
    memo = _Memo(x)

    def fun_only(x, *a):
        f = memo.get(x, a)
        if f is None:
            counter["fun"] += 1
            f = memo.put(x, a, value(fun(x.copy(), *a)))
        return f

    return fun_only


def python_functions(fun, jac, x, args, counter, lb=None, ub=None):
    """``(fun_only, fg, grad, grad_calls_fun, first)`` for Python callables.

    ``grad`` is the gradient alone (the user's ``jac``, ``fun(x)[1]`` with
    ``jac=True``, or the finite-difference gradient); ``grad_calls_fun`` says
    whether a ``grad`` call also evaluates ``fun`` (``jac=True``).  The calls
    the user's functions actually receive are counted in ``counter["fun"]``
    and ``counter["jac"]`` (finite differences: ``fun`` calls, and gradients
    computed): :func:`fastopt.minimize` reports those as ``nfev``/``njev``.
    A repeated request at the point just evaluated returns the stored values
    (:class:`_Memo`).  ``first`` is ``(f, g)`` at ``x``: evaluated here once
    to check the return types; drivers may reuse it
    (:attr:`fastopt._objective.Objective.first`).  ``lb``/``ub``: the box the
    run keeps to, which finite differences do not step out of either.
    """
    shape, dtype = x.shape, x.dtype
    probe = np.empty(shape, dtype)
    counter["fun"] = counter["jac"] = 0

    def value(f):
        return f if isinstance(f, float) else check_value(f, "fun(x)")

    def gradient(g, where="jac(x)"):
        if type(g) is np.ndarray and g.shape == shape and g.dtype == dtype:
            if g.flags.c_contiguous:
                return g
        return check_grad(g, probe, where)

    grad_calls_fun = False
    if callable(jac):
        fun_only = _memo_value(fun, x, counter, value)
        mg = _Memo(x)

        def grad(x, *a):
            g = mg.get(x, a)
            if g is None:
                counter["jac"] += 1
                g = mg.put(x, a, gradient(jac(x.copy(), *a)))
            return g

        def fg(x, *a):
            return fun_only(x, *a), grad(x, *a)

    elif jac is True:
        m = _Memo(x)

        def fg(x, *a):
            out = m.get(x, a)
            if out is None:
                counter["fun"] += 1
                counter["jac"] += 1
                out = fun(x.copy(), *a)
                if type(out) is not tuple or len(out) != 2:
                    out = check_fg_pair(out, "fun(x)")
                out = m.put(x, a, (value(out[0]), gradient(out[1], "fun(x)[1] (jac=True)")))
            return out

        def fun_only(x, *a):
            return fg(x, *a)[0]

        def grad(x, *a):
            return fg(x, *a)[1]

        grad_calls_fun = True
    else:
        fun_only, fg, grad = _finite_differences(fun, jac, x, counter, value, lb, ub)

    first = fg(x, *args)
    return fun_only, fg, grad, grad_calls_fun, first


def _finite_differences(fun, jac, x, counter, value, lb=None, ub=None):
    """``fun_only, fg, grad`` with scipy's finite-difference gradient (``jac`` a scheme or None).

    With bounds ``lb``/``ub`` the differences stay inside the box, as in
    scipy's L-BFGS-B: scipy's ``approx_derivative`` takes one-sided steps
    (or shorter ones) next to a bound, so ``fun`` is never called outside it.
    A variable fixed by its bounds (``lb == ub``) is not differenced (no step
    fits; scipy's minimize removes such variables when it differences): its
    gradient entry is 0, which no projected step or projected-gradient test
    reads.
    """
    from scipy.optimize._numdiff import approx_derivative

    scheme = "2-point" if jac in (None, False) else jac
    assert scheme in FD_SCHEMES
    dtype = x.dtype
    fun_only = _memo_value(fun, x, counter, value)
    mg = _Memo(x)
    free = None if lb is None else ~(lb == ub)
    box = (-np.inf, np.inf) if lb is None else (lb[free], ub[free])

    def grad(x, *a):
        g = mg.get(x, a)
        if g is not None:
            return g

        if free is None:
            z0 = x

            def f1(z):
                counter["fun"] += 1
                return value(fun(z.copy(), *a))

        else:  # the free variables only
            z0 = x[free]

            def f1(z):
                counter["fun"] += 1
                full = x.copy()
                full[free] = z
                return value(fun(full, *a))

        # a 2-point difference needs f(x): the loop has usually just asked
        f0 = fun_only(x, *a) if scheme == "2-point" else None
        counter["jac"] += 1
        # difference in x's own dtype: scipy sizes the step for it (a
        # float64-sized step vanishes when rounded to float32)
        g = np.zeros(x.shape, dtype)
        if z0.size:
            gz = approx_derivative(f1, z0, method=scheme, f0=f0, bounds=box)
            if free is None:
                g[:] = gz
            else:
                g[free] = gz
        return mg.put(x, a, g)

    def fg(x, *a):
        return fun_only(x, *a), grad(x, *a)

    return fun_only, fg, grad


def python_product(fn, n, name):
    """A Python ``hessp``/``diagonal`` wrapper: copies in, shape checked on every call."""
    shape = (n,)
    probe = np.empty(shape)

    if name == "diagonal":

        def diagonal(x, *args):
            out = fn(x.copy(), *args)
            if type(out) is np.ndarray and out.shape == shape and out.dtype == np.float64:
                return out
            return check_grad(out, probe, "diagonal(x)", name)

        return diagonal

    def product(x, v, *args):
        out = fn(x.copy(), v.copy(), *args)
        if type(out) is np.ndarray and out.shape == shape and out.dtype == np.float64:
            return out
        return check_grad(out, probe, f"{name}(x, v)", name)

    return product
