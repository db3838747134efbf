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


def user_loop(fn):
    """Compile ``fn``, a loop that calls user functions (not cacheable)."""
    return numba.njit(**USER)(fn)
