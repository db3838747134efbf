"""Every numba option in one place.

``error_model="numpy"``: numba's default ("python") error model checks every
division for a zero divisor so that it can raise ``ZeroDivisionError``; that
branch blocks vectorisation and was measured 5-15x slower on the Adam step.
With the numpy model, ``1/0`` is ``inf`` as in NumPy, which is what an
optimizer step wants anyway (a NaN/inf check happens in the drivers).

``cache=True`` on every kernel that does not take a user function as an
argument: the first call in a new process then loads machine code from
``__pycache__`` instead of compiling (see ``benchmarks/`` for first-call time).
Kernels that take a user's ``@njit`` objective cannot be cached by numba.

No ``fastmath``: it makes ``np.isnan`` return False on NaN, and the drivers
rely on NaN checks.
"""

import os

import numba

KERNEL = {"cache": True, "error_model": "numpy", "nogil": True}
PARALLEL = {**KERNEL, "parallel": True}
INLINE = {"inline": "always", "error_model": "numpy"}
#: loops that call a user's function: not cacheable
USER = {"error_model": "numpy", "nogil": True}


def kernel(fn):
    """Compile ``fn`` as a cached serial kernel."""
    return numba.njit(**KERNEL)(fn)


def parallel_kernel(fn):
    """Compile ``fn`` as a cached kernel whose ``prange`` loops run on threads."""
    return numba.njit(**PARALLEL)(fn)


def inline(fn):
    """Compile ``fn`` as a helper that numba inlines into its callers."""
    return numba.njit(**INLINE)(fn)


def scalar(fn):
    """Compile a scalar-only helper of a rule (LLVM inlines it into the loop)."""
    return numba.njit(error_model="numpy")(fn)


def user_loop(fn):
    """Compile ``fn``, a loop that calls user functions (not cacheable)."""
    return numba.njit(**USER)(fn)


# --- cache invalidation across files ------------------------------------------
# numba decides whether a cached kernel is stale from the kernel's own source
# file only.  fastopt's kernels inline functions from other modules (each
# rule's elem/coeffs lives in fastopt/rules/), so an edit there would leave a
# stale kernel in the cache.  These locators add a stamp of every source file
# of the package to numba's per-file stamp; they apply to fastopt's own
# functions only and fall back to numba's behaviour if its internals change.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_STAMP = None


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
        def get_source_stamp(self):
            return (super().get_source_stamp(), package_stamp())

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(_PACKAGE_DIR + os.sep):
                return None
            return super().from_function(py_func, py_file)

    ours = [type(f"FastOpt{b.__name__}", (_PackageStamp, b), {}) for b in bases]
    if not any(getattr(c, "__name__", "").startswith("FastOpt") for c in classes):
        classes[:0] = ours


_install_package_stamp()
