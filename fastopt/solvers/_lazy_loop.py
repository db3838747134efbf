"""Solver loops written once, run as Python or compiled (the loop machinery).

Every solver writes its loop once, as a plain Python function over NumPy
arrays and scalars that numba can also compile.  With Python callables the
function runs as Python; with ``@njit`` callables :class:`LazyLoop` compiles
it (lazily, on first use, with the user's functions built in and cached to
disk where they allow) and it runs in nopython mode.  Helpers the loops call
are made callable from both worlds by :func:`dual`, so there is one source
and the two paths give the same iterates.
"""

import ast
import functools
import inspect
import types
from typing import NamedTuple

import numpy as np
from numba.core.registry import CPUDispatcher
from numba.extending import overload

from .. import _jit
from .._user import GLUE_CACHE_SIZE, BoundedCache
from ._vectors import dot_compiled


def dual(fn, python=None, borrow=False):
    """Make the plain Python function ``fn`` callable from nopython code too.

    The function is registered as its own numba ``overload``: Python calls
    run it as Python, and a compiled loop that calls it compiles the same
    source (``take_args`` in :mod:`fastopt._batching` does the same with a
    generated body).  Nothing compiles until a compiled loop is typed.

    Optional inputs are passed as None and tested with ``if arg is None``:
    numba resolves that test on an argument at compile time and drops the
    dead branch, so an absent ``hessp`` needs neither a flag nor a stand-in
    function, and each case compiles only its own code.

    ``python``: what a Python call runs instead of ``fn`` (a wrapper of it,
    see :func:`ieee_division`); it is the function returned and registered.
    ``borrow``: ``fn`` allocates nothing and returns no array, and compiles
    without reference counting on its array arguments (as
    :func:`fastopt._jit.borrowing_kernel`).
    """
    python = fn if python is None else python
    typer = functools.wraps(fn)(lambda *args, **kws: fn)
    # _nrt explicit either way: numba compiles a function that sets no flag
    # with its caller's, and a helper called from both a counting loop and a
    # borrowing one (_jit.bound_loop) compiled once for each
    options = {"error_model": _jit.USER["error_model"], "_nrt": not borrow}
    overload(python, jit_options=options)(typer)
    return python


def borrowing_dual(fn):
    """:func:`dual` with ``borrow=True``."""
    return dual(fn, borrow=True)


def ieee_division(fn):
    """:func:`dual` ``fn`` whose Python calls divide by zero as its compiled code does.

    Compiled with numba's ``error_model="numpy"``, ``x / 0.0`` is ``inf`` or
    NaN; in Python it raises ZeroDivisionError.  On that error the call is
    repeated with its float arguments as NumPy float64 scalars, whose
    arithmetic is the same IEEE arithmetic with NumPy's division (warnings
    silenced), so both paths return the same values.  ``fn`` must not
    modify its arguments (the call is repeated).
    """

    @functools.wraps(fn)
    def python(*args):
        try:
            return fn(*args)
        except ZeroDivisionError:
            with np.errstate(all="ignore"):
                return fn(*[np.float64(a) if type(a) is float else a for a in args])

    return dual(fn, python)


def is_jitted(fn):
    """True when ``fn`` is a numba CPU dispatcher (callable from nopython code)."""
    return isinstance(fn, CPUDispatcher)


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
    borrow : bool
        The bound loop holds no array of its own and compiles without
        reference counting (:func:`fastopt._jit.bound_loop`); the functions
        it calls that return arrays (the user's) must be called from a
        ``specialise`` helper that releases them.
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

    def __init__(self, fn, n_functions, inline=(), cache=False, specialise=None, borrow=False):
        self.python = fn
        self.cache = cache
        self.borrow = borrow
        self.n_functions = n_functions
        self.specialise = dict(specialise or {})
        self._inline = tuple(inline)
        self._names = None
        self._code = None
        self._compiled = None
        # one compiled loop per set of functions, the least recently used
        # dropped past GLUE_CACHE_SIZE (each holds megabytes of machine code)
        self._bound = BoundedCache(GLUE_CACHE_SIZE)

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
                bound = (_jit.bound_loop(loop, fns, borrow=self.borrow), ())
            else:
                bound = (_jit.user_loop(loop, self.borrow), ())
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
