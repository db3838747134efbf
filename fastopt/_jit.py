"""Every numba option in one place.

``error_model="numpy"``: numba's default ("python") error model checks every
division for a zero divisor so that it can raise ``ZeroDivisionError``; that
branch blocks vectorisation and was measured 5-15x slower on the Adam step.
With the numpy model, ``1/0`` is ``inf`` as in NumPy, which is what an
optimizer step wants anyway (a NaN/inf check happens in the drivers).

``cache=True`` on every kernel that does not take a user function as an
argument: the first call in a new process then loads machine code from
``__pycache__`` instead of compiling (see ``benchmarks/`` for first-call time).
A loop with a user's ``@njit`` objective built in is cached when the
objective is (:func:`bound_loop`); otherwise it compiles in every process.

No ``fastmath``: it makes ``np.isnan`` return False on NaN, and the drivers
rely on NaN checks.
"""

import hashlib
import inspect
import os
import types
import warnings

import numba


def _probe_cache():
    """Whether numba can cache here: a writable ``__pycache__``, ``NUMBA_CACHE_DIR``
    or user-wide cache directory (numba raises "no locator available" at
    decoration time otherwise, which made ``import fastopt`` fail on a
    read-only install)."""
    try:
        numba.njit(cache=True)(_cache_probe)
    except RuntimeError as e:
        if "no locator available" not in str(e):
            raise
        warnings.warn(
            "fastopt: numba has no writable cache location (read-only package tree, "
            "NUMBA_CACHE_DIR and home directory); kernels compile in memory in every "
            "process. Set NUMBA_CACHE_DIR to a writable directory to cache them.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def _cache_probe():  # pragma: no cover - only decorated, never called
    return 0


#: False when numba has no writable cache location: everything compiles in
#: memory (one warning at import) instead of failing
CACHE = _probe_cache()

KERNEL = {"cache": CACHE, "error_model": "numpy", "nogil": True}
PARALLEL = {**KERNEL, "parallel": True}
#: kernels that only read and write the arrays they are given (see
#: :func:`borrowing_kernel`)
BORROW = {**KERNEL, "_nrt": False}
INLINE = {"inline": "always", "error_model": "numpy"}
#: loops that call a user's function (cached only by :func:`bound_loop`)
USER = {"error_model": "numpy", "nogil": True}


def kernel(fn):
    """Compile ``fn`` as a cached serial kernel."""
    return numba.njit(**KERNEL)(fn)


def borrowing_kernel(fn):
    """Compile ``fn`` as a cached kernel that borrows its arrays: no reference counting.

    numba counts references to every array a function receives (an atomic
    increment on entry and a decrement on exit, per array argument, that its
    pruning pass often cannot remove around loops and early returns).  For a
    kernel called once or more per iteration with a dozen work arrays that is
    most of its cost when the vectors are short: in the bounded decay fits of
    ``benchmarks/many_compare.py`` (3 variables) the atomic operations took
    35% of the time.  A kernel that allocates nothing and returns no array
    never needs them: its caller holds the arrays for the whole call.
    ``_nrt=False`` (numba's flag, as in its own test suite) compiles such a
    kernel without them; a kernel so compiled that allocates fails to
    compile ("NRT required but not enabled"), so misuse cannot go unnoticed.
    The arithmetic is the same machine code either way.
    """
    return numba.njit(**BORROW)(fn)


def borrowing_helper(kernel):
    """An inlined copy of the :func:`borrowing_kernel` ``kernel``, for a hot call site.

    For the small steps of a kernel (a triangular solve, the reduced
    gradient) that other borrowing kernels call once or more per iteration:
    a call passes each array as its 5 + 2 ndim words, and at the sizes of a
    small fit (3 variables, a few pairs) passing them, not the arithmetic,
    was most of such a step's time.  The copy is inlined (numba IR) where
    it is called, the caller's arrays used in place; the kernel stays an
    ordinary cached kernel for its other callers.  Inline only where it
    pays: each inlined site is compiled again with its caller (inlining
    every call of these steps took a cold cache's first bounded ``lbfgs``
    call from about 12 to 15 s of CPU).
    """
    return numba.njit(inline="always", **{k: v for k, v in BORROW.items() if k != "cache"})(
        kernel.py_func
    )


def parallel_kernel(fn):
    """Compile ``fn`` as a cached kernel whose ``prange`` loops run on threads."""
    return numba.njit(**PARALLEL)(fn)


def inline(fn):
    """Compile ``fn`` as a helper that numba inlines into its callers."""
    return numba.njit(**INLINE)(fn)


def scalar(fn):
    """Compile a scalar-only helper of a rule (LLVM inlines it into the loop)."""
    return numba.njit(error_model="numpy")(fn)


def user_loop(fn, borrow=False):
    """Compile ``fn``, a loop that calls user functions, for this process only.

    ``borrow``: compiled without reference counting, as a
    :func:`borrowing_kernel` (see :func:`bound_loop`).
    """
    return numba.njit(**_user_options(borrow))(fn)


def _user_options(borrow):
    # explicit either way: numba compiles a callee with its caller's flags
    # where the callee sets none, and a function that releases the user's
    # arrays (lbfgs._evaluate) called from a borrowing loop must count them
    return {**USER, "_nrt": not borrow}


def specialised(fn, suffix, options, **constants):
    """``fn`` compiled with some of its globals bound to ``constants``, under its own name.

    A kernel with a switch argument (a loss, an activation) compiles every
    case; bound to a global constant, the case is known at compile time
    (numba prunes a branch on two global constants before compiling, LLVM
    folds the rest), so a call compiles the code it runs only.  The name
    ``<fn>_<suffix>`` gives each variant its own cache file: numba keys its
    cache by the function's name and freezes globals at compile time.
    """
    namespace = dict(fn.__globals__, **constants)
    out = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__)
    out.__qualname__ = f"{fn.__qualname__}_{suffix}"
    out.__doc__ = fn.__doc__
    return numba.njit(**options)(out)


#: extra source stamps of the cached bound loops, by the loop's qualname
#: (see :func:`cached_loop`)
_EXTRA_STAMPS = {}


def cache_identity(fns):
    """``(names, stamps)`` of ``fns`` if a loop built on them can be cached, else None.

    A loop with the functions built in is cached only when every one of them
    is None or a numba dispatcher compiled with ``cache=True`` from a source
    file, not a closure: the user opted into numba's caching for each, with
    its semantics (globals frozen at compile time).  fastopt's own glue around them (the
    ``fun(x)[0]`` of ``jac=True`` and the like, marked ``fastopt_glue =
    (kind, *functions)``) counts as the functions it wraps.  ``names``
    identifies the functions (module, qualified name, file, first line),
    ``stamps`` their files' modification times and sizes.
    """
    from numba.core.caching import NullCache

    names, stamps = [], []

    def add(fn):
        if fn is None:
            names.append(None)
            stamps.append(None)
            return True
        glue = getattr(fn, "fastopt_glue", None)
        if glue is not None:
            names.append(glue[0])
            stamps.append(None)
            return all(add(inner) for inner in glue[1:])
        py = getattr(fn, "py_func", None)
        cache = getattr(fn, "_cache", None)
        if py is None or cache is None or isinstance(cache, NullCache):
            return False
        if py.__closure__:  # its cells are per-instance: numba keys its cache by name
            return False
        try:
            path = inspect.getfile(py)
            st = os.stat(path)
        except (TypeError, OSError):
            return False
        names.append((py.__module__, py.__qualname__, path, py.__code__.co_firstlineno))
        stamps.append((st.st_mtime_ns, st.st_size))
        return True

    if not all(add(fn) for fn in fns):
        return None
    return tuple(names), tuple(stamps)


def bound_loop(fn, fns, label="", borrow=False):
    """Compile ``fn``, a loop with the functions ``fns`` built in as globals.

    Cached (:func:`cached_loop`) when :func:`cache_identity` allows, under a
    ``__qualname__`` that names ``fns`` and ``label`` (what else the loop
    was specialised for), else compiled per process (:func:`user_loop`).

    ``borrow``: the loop holds no array of its own (every array it gets from
    a function it calls is released there), and compiles without reference
    counting, as a :func:`borrowing_kernel`: numba otherwise counts each of
    its array arguments in and out on every call (two atomic operations
    each), which its pruning pass does not remove around a loop that calls
    other functions.
    """
    ident = cache_identity(fns)
    if ident is None or not _STAMPS_INSTALLED or not CACHE:
        # (without fastopt's locators the functions' stamps would not be
        # checked, and an edited objective could load a stale loop)
        return user_loop(fn, borrow)
    names, stamps = ident
    digest = hashlib.sha1(repr((label, names)).encode()).hexdigest()[:16]
    fn.__qualname__ = f"{fn.__name__}_{digest}"
    return cached_loop(fn, stamps, borrow)


def cached_loop(fn, stamps, borrow=False):
    """Compile ``fn``, a loop with cached functions built in, with ``cache=True``.

    ``fn`` is a solver loop whose user functions are globals (see
    :class:`fastopt.solvers._lazy_loop.LazyLoop`) and whose ``__qualname__``
    names that set of functions, so that each set has its own cache index.
    ``stamps`` (the source files' times and sizes of those functions) joins
    the loop's stamp: numba checks only the cached function's own file, and
    an edited objective must not load a loop compiled with its old code.
    """
    _EXTRA_STAMPS[fn.__qualname__] = stamps
    return numba.njit(cache=True, **_user_options(borrow))(fn)


# --- cache invalidation across files ------------------------------------------
# numba decides whether a cached kernel is stale from the kernel's own source
# file only.  fastopt's kernels inline functions from other modules (each
# rule's elem/coeffs lives in fastopt/rules/), so an edit there would leave a
# stale kernel in the cache.  These locators add a stamp of every source file
# of the package to numba's per-file stamp; they apply to fastopt's own
# functions only and fall back to numba's behaviour if its internals change.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_STAMP = None
#: whether fastopt's locators (package and bound-function stamps) are in place
_STAMPS_INSTALLED = False


def package_stamp():
    """(name, mtime, size) of every ``.py`` file of the package, computed once."""
    global _STAMP
    if _STAMP is None:
        entries = []
        for root, dirs, files in os.walk(_PACKAGE_DIR):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    st = os.stat(os.path.join(root, f))
                    entries.append((os.path.relpath(os.path.join(root, f), _PACKAGE_DIR),
                                    st.st_mtime_ns, st.st_size))  # fmt: skip
        _STAMP = tuple(entries)
    return _STAMP


def _install_package_stamp():
    try:
        from numba.core import caching

        classes = caching.CacheImpl._locator_classes
        bases = (
            caching.UserProvidedCacheLocator,
            caching.InTreeCacheLocator,
            caching.UserWideCacheLocator,
        )
    except (ImportError, AttributeError):  # pragma: no cover - numba internals moved
        return

    class _PackageStamp:
        _extra = None

        def get_source_stamp(self):
            stamp = (super().get_source_stamp(), package_stamp())
            return stamp if self._extra is None else (*stamp, self._extra)

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(_PACKAGE_DIR + os.sep):
                return None
            locator = super().from_function(py_func, py_file)
            if locator is not None:
                locator._extra = _EXTRA_STAMPS.get(getattr(py_func, "__qualname__", None))
            return locator

    global _STAMPS_INSTALLED
    ours = [type(f"FastOpt{b.__name__}", (_PackageStamp, b), {}) for b in bases]
    if not any(getattr(c, "__name__", "").startswith("FastOpt") for c in classes):
        classes[:0] = ours
    _STAMPS_INSTALLED = True


_install_package_stamp()
