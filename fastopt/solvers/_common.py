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

import ast
import functools
import inspect
import math
import types
from typing import NamedTuple

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
def lincomb_into(out, a, x, b, y):
    """``out[:] = a * x + b * y`` (``out`` may be ``x`` or ``y``)."""
    for i in range(x.shape[0]):
        out[i] = a * x[i] + b * y[i]


@_jit.kernel
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


def dot(a, b):
    """``a . b`` as a Python float (NumPy's BLAS ``ddot``).

    The compiled loops call :func:`dot_compiled` in its place (see
    :class:`LazyLoop`), which gives the same bits.
    """
    return float(a.dot(b))


#: below this length OpenBLAS's ``ddot`` kernels add the products one by one,
#: in order (its unrolled, several-accumulator loop starts at 16 elements);
#: measured bit-identical to NumPy's ``dot`` for n = 1..15 and to differ from
#: n = 16 on (``tests/test_solvers.py::test_dot_matches_blas``)
DOT_SEQUENTIAL_BELOW = 16


@_jit.inline
def dot_compiled(a, b):
    """:func:`dot` in compiled loops: a plain loop for short vectors, else BLAS.

    A BLAS call from nopython code costs about 55 ns, ten times a 2-element
    loop and four of them per SCG pass; below :data:`DOT_SEQUENTIAL_BELOW`
    elements the loop sums in BLAS's order, so the result is the same.
    """
    n = a.shape[0]
    if n < DOT_SEQUENTIAL_BELOW:
        out = 0.0
        for i in range(n):
            out += a[i] * b[i]
        return out
    return np.dot(a, b)


def _rebind(fn, names):
    """``fn`` with some of its global names bound to other objects (same code)."""
    g = dict(fn.__globals__)
    g.update(names)
    return types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)


class _Stripped(NamedTuple):
    """A module-level function's code without its leading function parameters."""

    name: str
    code: types.CodeType
    globals: dict
    fparams: tuple
    #: ``(alias, callee, argument names)``: calls rewritten to ``alias(...)``
    calls: tuple


_STRIPPED = {}


class _Specialise(ast.NodeTransformer):
    """Rewrite ``callee(f1, .., fk, rest)`` to ``alias(rest)`` (see :class:`LazyLoop`)."""

    def __init__(self, fnames, specialise):
        self.fnames = set(fnames)
        self.specialise = specialise
        self.calls = {}

    def visit_Call(self, node):
        self.generic_visit(node)
        name = node.func.id if isinstance(node.func, ast.Name) else None
        k = self.specialise.get(name)
        if k is None or len(node.args) < k:
            return node
        lead = node.args[:k]
        if not all(isinstance(a, ast.Name) and a.id in self.fnames for a in lead):
            return node
        key = (name, tuple(a.id for a in lead))
        alias = self.calls.setdefault(key, f"_{name}__bound{len(self.calls)}")
        call = ast.Call(func=ast.Name(alias, ast.Load()), args=node.args[k:],
                        keywords=node.keywords)  # fmt: skip
        return ast.copy_location(call, node)


def _stripped(fn, n_functions, specialise, memo=True):
    """``fn``'s code rebuilt from its source without its first ``n_functions``
    parameters (names that then resolve as globals), calls rewritten as
    :class:`_Specialise` says; None without a source, or when the source no
    longer compiles to ``fn``'s bytecode (a file edited since the import).
    Kept per function (``memo``; :class:`LazyLoop` keeps its loop's itself).
    """
    key = (fn, n_functions, tuple(sorted(specialise.items())))
    if memo and key in _STRIPPED:
        return _STRIPPED[key]
    _STRIPPED[key] = None
    try:
        filename = inspect.getsourcefile(fn)
        tree = ast.parse(inspect.getsource(inspect.getmodule(fn)), filename)
    except (OSError, TypeError):  # no source (frozen, zipped): fall back
        return None
    fdef = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn.__name__]
    if len(fdef) != 1:
        return None
    fdef = fdef[0]
    fdef.decorator_list = []
    # The module's imports stay in the unit compiled (not run): CPython
    # compiles ``module.attr(...)`` differently when ``module`` is imported.
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]

    def code_of(node):
        unit = compile(ast.Module(body=[*imports, node], type_ignores=[]), filename, "exec")
        return next(c for c in unit.co_consts if getattr(c, "co_name", None) == fn.__name__)

    # The file may have changed since the module was imported (an edited
    # editable install): use it only if it compiles to the function's bytecode.
    if code_of(fdef).co_code != fn.__code__.co_code:
        return None
    params = fdef.args.args
    fparams = tuple(a.arg for a in params[:n_functions])
    fdef.args.args = params[n_functions:]
    rewrite = _Specialise(fparams, specialise)
    fdef = ast.fix_missing_locations(rewrite.visit(fdef))
    calls = tuple((alias, name, args) for (name, args), alias in rewrite.calls.items())
    _STRIPPED[key] = _Stripped(fn.__name__, code_of(fdef), fn.__globals__, fparams, calls)
    return _STRIPPED[key]


class LazyLoop:
    """A solver loop, run as Python or compiled, and compiled only on first use.

    Parameters
    ----------
    fn : callable
        The loop, plain Python; its first ``n_functions`` parameters are the
        user's callables (or None).
    n_functions : int
        How many leading parameters are functions.
    inline : tuple of str
        Global names of cached kernels (``@_jit.kernel``) that ``fn`` calls
        and that the compiled loop gets inlined (each one also inlines those
        named before it).  A call from compiled code into a cached kernel
        cannot be inlined by LLVM (the kernel is loaded as machine code) and
        pays reference counting on its array arguments; inlining costs
        compile time at every call site, so only the hot ones are listed.
        ``dot`` is always replaced by :func:`dot_compiled`.
    cache : bool
        Cache the bound loops to disk where the functions allow it
        (:func:`fastopt._jit.bound_loop`).  Only for a loop that passes none
        of its functions on as an argument (list the callees in
        ``specialise``): a function passed to another compiled function is
        an address in the machine code (numba: "dynamic globals"), which no
        cache can keep.
    specialise : dict, optional
        ``{name: k}``: global functions (``@dual``, module level) whose first
        ``k`` parameters are functions.  A call ``name(f1, ..., fk, ...)``
        whose ``f1..fk`` are the loop's function parameters (or, in such a
        callee, its own) calls a version of ``name`` with them built in,
        as the loop has them (``hf_iteration`` and its
        ``curvature_product``, say).

    Notes
    -----
    :meth:`bind` compiles the loop once per distinct set of user functions,
    with the functions as global constants instead of parameters: a numba
    dispatcher passed as an *argument* is typed from Python on every call
    into compiled code (about 5 us a call, measured; the compiled SCG loop
    solves 2-D Rosenbrock in about 15 us), while arrays and scalars take
    numba's C fast path.  The rebuilt function is the loop's own source
    with the first ``n_functions`` parameters removed (so the names resolve
    as globals), compiled from the same file and line numbers; it is the
    same code, so Python and compiled runs keep giving the same iterates.
    A thin compiled wrapper that passes the constants on would do the same
    but costs about 0.4 s more to compile (LLVM re-optimizes the inlined
    loop).  Without the source, or when the file no longer matches the
    loop's bytecode, :meth:`bind` falls back to the loop compiled with the
    functions as arguments.  The loops built are kept, keyed by the
    functions, as numba keeps each specialisation of a loop that takes them
    as arguments; with ``cache`` they are also cached to disk when every
    function is itself cached (``@njit(cache=True)``, fastopt's kernels), so
    a new process loads them instead of compiling.
    """

    def __init__(self, fn, n_functions, inline=(), cache=False, specialise=None):
        self.python = fn
        self.cache = cache
        self.n_functions = n_functions
        self.specialise = dict(specialise or {})
        self._inline = tuple(inline)
        self._names = None
        self._code = None
        self._compiled = None
        self._bound = {}

    def _replacements(self):
        """Global name -> the compiled loop's version (``dot``, inlined kernels)."""
        if self._names is None:
            glb = self.python.__globals__
            names = {"dot": dot_compiled} if "dot" in glb else {}
            for name in self._inline:
                names[name] = _jit.inline(_rebind(glb[name].py_func, names))
            self._names = names
        return self._names

    @property
    def compiled(self):
        """The compiled loop that takes the functions as arguments (fallback)."""
        if self._compiled is None:
            self._compiled = _jit.user_loop(_rebind(self.python, self._replacements()))
        return self._compiled

    def _source_without_functions(self):
        """The loop's code without its function parameters (a :class:`_Stripped`), or None."""
        if self._code is None:
            self._code = _stripped(self.python, self.n_functions, self.specialise,
                                   memo=False) or False  # fmt: skip
        return self._code or None

    def bind(self, *fns):
        """``(loop, first_args)``: the compiled loop for the functions ``fns``.

        ``loop(*first_args, *rest)`` runs it.  Normally the loop has ``fns``
        built in and ``first_args`` is empty; without the loop's source,
        the generic compiled loop and ``fns`` as its first arguments.
        """
        if len(fns) != self.n_functions:
            raise TypeError(f"bind() takes {self.n_functions} functions, got {len(fns)}")
        key = tuple(fns)
        bound = self._bound.get(key)
        if bound is None:
            loop = self._instantiate(self._source_without_functions(), fns,
                                     self._replacements())  # fmt: skip
            if loop is None:
                bound = (self.compiled, key)
            elif self.cache:
                bound = (_jit.bound_loop(loop, fns), ())
            else:
                bound = (_jit.user_loop(loop), ())
            self._bound[key] = bound
        return bound

    def _instantiate(self, stripped, fns, replacements):
        """The function of ``stripped`` with ``fns`` bound, or None without a source.

        Each call it makes to a function of :attr:`specialise` with functions
        as its leading arguments calls a version of that function with those
        built in, compiled here (its code is linked into the loop's).
        """
        if stripped is None:
            return None
        namespace = dict(stripped.globals)
        namespace.update(replacements)
        namespace.update(zip(stripped.fparams, fns, strict=True))
        for alias, callee_name, arg_names in stripped.calls:
            callee = namespace[callee_name]
            inner = _stripped(callee, self.specialise[callee_name], self.specialise)
            glb = callee.__globals__
            inner_fn = self._instantiate(inner, [namespace[a] for a in arg_names],
                                         {"dot": dot_compiled} if "dot" in glb else {})  # fmt: skip
            if inner_fn is None:
                return None
            namespace[alias] = _jit.user_loop(inner_fn)
        return types.FunctionType(stripped.code, namespace, stripped.name)

    def select(self, compiled, *fns):
        """``(loop, first_args)``: ``loop(*first_args, *rest)`` runs the loop.

        Python: the loop itself, with ``fns`` passed in; compiled:
        :meth:`bind`.
        """
        if compiled:
            return self.bind(*fns)
        return self.python, fns


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


class _DiagonalChecked:
    """Python-mode ``diagonal`` that checks its output shape on the first call."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n
        self.checked = False

    def __call__(self, x, *args):
        out = np.asarray(self.fn(x, *args), dtype=np.float64)
        if not self.checked:
            check_product_shape(out, self.n, "diagonal")
            self.checked = True
        return out


def prepare_diagonal(fn, compiled, x, args):
    """The ``diagonal`` option as the loop receives it, shape-checked.

    As :func:`prepare_product`: Python mode checks the first call; compiled
    mode evaluates it once here, at ``x``, to raise a readable error.
    Returns ``(diagonal, extra_evaluations)``.  Used by AdaHessian (its
    curvature) and Hessian-free (its preconditioner).
    """
    n = x.shape[0]
    if not compiled:
        return _DiagonalChecked(fn, n), 0
    check_product_shape(fn(x, *args), n, "diagonal")
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


def start_fg(obj, x, args):
    """``(f, g, reused)`` at the start ``x``, as :func:`initial_fg`.

    :func:`fastopt.minimize` has evaluated ``fg`` at ``x0`` already, to check
    its return types (``obj.first``); reusing that saves one evaluation
    (``reused`` is True, and the result says so with ``used_first``).  Only
    for a float64 ``x0``: the solvers compute in float64, and a float32
    ``x0`` was evaluated in float32.
    """
    first = obj.first
    if first is not None and obj.x0.dtype == np.float64:
        return float(first[0]), np.array(first[1], dtype=np.float64), True
    f, g = initial_fg(obj, x, args)
    return f, g, False


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


@dual
def curvature_product(prod, grad, x, v, gx, args):
    r""":func:`hvp` with a gradient-only ``grad(x, *args)`` for the finite difference.

    ``prod(x, v, *args)`` when given, else
    :math:`(\nabla f(x + e v) - \nabla f(x))/e` with
    :math:`e = \sqrt{\epsilon}\,(1 + \|x\|)/\|v\|`: the difference needs
    no function value, so it costs one gradient evaluation
    (:attr:`fastopt._objective.Objective.grad`), not a value-and-gradient.
    """
    if prod is None:
        e = SQRT_EPS * (1.0 + math.sqrt(float(x.dot(x)))) / math.sqrt(float(v.dot(v)))
        g_plus = grad(lincomb(1.0, x, e, v), *args)
        return fd_quotient(g_plus, gx, e)
    return prod(x, v, *args)


def grad_fev(obj):
    """Function evaluations per ``obj.grad`` call: 1 when it evaluates ``fun`` too."""
    return 1 if obj.grad_calls_fun else 0


def result(x, f, g, status, nit, nfev, njev, nhev, allvecs, used_first=False):
    """The solver's result dict (``allvecs`` only when it was kept).

    ``used_first``: the first evaluation was ``obj.first`` (see
    :func:`start_fg`), so :func:`fastopt.minimize` does not count its own
    check call again.
    """
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
    if used_first:
        out["used_first"] = True
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

    ``obj.compiled`` promises ``@njit`` ``fun``/``fg``/``grad``/``hessp``; any other
    callable the loop receives (``extra``, e.g. a Gauss-Newton product given
    as an option) must be jitted too, else the Python loop runs (numba
    dispatchers are callable from Python, so nothing is lost but speed).
    """
    if not obj.compiled:
        return False
    fns = [obj.fun, obj.fg, obj.grad] + ([obj.hessp] if obj.hessp is not None else [])
    fns += [fn for fn in extra if fn is not None]
    return all(is_jitted(fn) for fn in fns)
