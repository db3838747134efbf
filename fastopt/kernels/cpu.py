"""CPU step kernels compiled from the rules' single ``elem``/``coeffs`` source.

Every variant of every rule (kernel id ``kid``, an index of
:data:`fastopt.rules.KERNEL_TABLE`) has its own cached kernel
``SERIAL[kid](x, g, S, h, t, lr, aux, c)`` (and ``PARALLEL[kid]``), written
from one template (:data:`_TEMPLATE`) that calls the rule's element and
coefficient functions as module globals, so each caches to disk like any
other kernel (a kernel that took the element function as an argument, or a
closure from a factory, would never hit numba's cache).  One kernel per id,
not one switch kernel over all ids: the first step in a new process with an
empty cache compiles the rule it runs, not all of them (5.5 s -> ~0.6 s for
the first Adam step, ``benchmarks/coldstart.py``).  ``step(kid, ...)`` and
``step_parallel(kid, ...)`` call them by id.

The serial and the parallel kernel share the element source; they differ only
in ``range`` vs ``prange``.  Serial is the default: on small machines a second
thread often stalls for a scheduler tick; :data:`PARALLEL_MIN_SIZE` is where
the parallel kernel starts to pay (see ``benchmarks/compare.py``).
"""

import numba  # noqa: F401 - used by _TEMPLATE (numba.prange)
import numpy as np

from .. import _jit
from ..rules import KERNEL_TABLE

# _E<k> / _C<k>: the element and coefficient functions of kernel id k, compiled
# for inlining.  Module globals (not arguments) so the switch kernels cache.
for _k, (_key, _kern) in enumerate(KERNEL_TABLE):
    # An element function that calls scalar helpers is left to LLVM to inline:
    # inlined by numba (inline="always"), its loop was measured not to
    # vectorise at all (Rprop, 1.4-2x Adam's time per element).
    _compile_elem = _jit.scalar if _kern.helpers else _jit.inline
    globals()[f"_E{_k}"] = _compile_elem(_kern.bind(_jit.scalar))
    globals()[f"_C{_k}"] = _jit.inline(_kern.coeffs)

N_KERNELS = len(KERNEL_TABLE)
#: the cases written out in _coeffs below (a new kernel adds one)
_N_CASES = 18
if N_KERNELS > _N_CASES:  # pragma: no cover - caught by every test run
    raise ImportError(f"kernels/cpu.py switches over {_N_CASES} kernels; the table has {N_KERNELS}")
#: size of the coefficient vector ``c`` (the largest any rule fills)
N_COEFFS = 12
#: below this size the serial kernel is used even when parallel is allowed.
#: Measured with Adam (``benchmarks/compare.py``, its parallel section): on a
#: quiet 16-core Xeon (docs/parallel_crossover.txt; 2, 4 and 16 threads) the
#: parallel kernel wins at every n >= 2e4; on the 2-core development machine
#: (2 threads, quiet) at every n >= 1e5 in float32 and 1e4 in float64, and it
#: loses at 5e4 in float32 (0.84x).  2**17 ~ 1.3e5 is past both crossovers.
#: Serial stays the default: on a loaded 2-core machine a second thread often
#: waits for a scheduler tick, and parallel did not win at any size there.
PARALLEL_MIN_SIZE = 1 << 17


@_jit.inline
def _coeffs(kid, h, t, lr, aux, c):
    if kid == 0:
        _C0(h, t, lr, aux, c)  # noqa: F821 - defined through globals() above
    elif kid == 1:
        _C1(h, t, lr, aux, c)  # noqa: F821
    elif kid == 2:
        _C2(h, t, lr, aux, c)  # noqa: F821
    elif kid == 3:
        _C3(h, t, lr, aux, c)  # noqa: F821
    elif kid == 4:
        _C4(h, t, lr, aux, c)  # noqa: F821
    elif kid == 5:
        _C5(h, t, lr, aux, c)  # noqa: F821
    elif kid == 6:
        _C6(h, t, lr, aux, c)  # noqa: F821
    elif kid == 7:
        _C7(h, t, lr, aux, c)  # noqa: F821
    elif kid == 8:
        _C8(h, t, lr, aux, c)  # noqa: F821
    elif kid == 9:
        _C9(h, t, lr, aux, c)  # noqa: F821
    elif kid == 10:
        _C10(h, t, lr, aux, c)  # noqa: F821
    elif kid == 11:
        _C11(h, t, lr, aux, c)  # noqa: F821
    elif kid == 12:
        _C12(h, t, lr, aux, c)  # noqa: F821
    elif kid == 13:
        _C13(h, t, lr, aux, c)  # noqa: F821
    elif kid == 14:
        _C14(h, t, lr, aux, c)  # noqa: F821
    elif kid == 15:
        _C15(h, t, lr, aux, c)  # noqa: F821
    elif kid == 16:
        _C16(h, t, lr, aux, c)  # noqa: F821
    elif kid == 17:
        _C17(h, t, lr, aux, c)  # noqa: F821


@_jit.inline
def _check(x, g, S):
    # the one check a kernel makes: a shape mismatch would read out of bounds
    # (a rule without slots gets S of shape (0, 0) from a saved state: not read)
    if g.shape[0] != x.shape[0] or (S.shape[1] != x.shape[0] and S.shape[0] != 0):
        raise ValueError("x, g and the state must have the same length")


# The kernel of id k: exec'd with this file's name (numba's cache locator
# needs a source file) and a __qualname__ of its own (numba keys a cache index
# by qualified name and line, the same for every kernel made from the template).
_TEMPLATE = """
def {name}(x, g, S, h, t, lr, aux, c):
    _check(x, g, S)
    _C{k}(h, t, lr, aux, c)
    for i in numba.prange(x.shape[0]):
        _E{k}(i, x, g, S, c)
"""


def _make_kernel(k, parallel):
    name = f"step{'_parallel' if parallel else ''}_{k}"
    code = compile(_TEMPLATE.format(name=name, k=k), __file__, "exec")
    exec(code, globals())
    fn = globals().pop(name)
    fn.__doc__ = f"One update of ``x`` (in place) with kernel {k} ({KERNEL_TABLE[k][0]})."
    return (_jit.parallel_kernel if parallel else _jit.kernel)(fn)


#: ``SERIAL[kid]``: the cached serial step kernel of kernel id ``kid``
SERIAL = tuple(_make_kernel(k, False) for k in range(N_KERNELS))
#: ``PARALLEL[kid]``: its ``prange`` twin, for ``n >= PARALLEL_MIN_SIZE`` (made
#: on first use by :func:`parallel_kernel`: most processes never need one)
PARALLEL = [None] * N_KERNELS


def parallel_kernel(kid):
    """The cached parallel step kernel of kernel id ``kid``."""
    if PARALLEL[kid] is None:
        PARALLEL[kid] = _make_kernel(kid, True)
    return PARALLEL[kid]


def step(kid, x, g, S, h, t, lr, aux, c):
    """One update of ``x`` (in place) with kernel ``kid``, serially."""
    SERIAL[kid](x, g, S, h, t, lr, aux, c)


def step_parallel(kid, x, g, S, h, t, lr, aux, c):
    """One update of ``x`` (in place) with kernel ``kid``, on numba's threads."""
    (PARALLEL[kid] or parallel_kernel(kid))(x, g, S, h, t, lr, aux, c)


def coefficients(kid, h, t, lr, aux, dtype):
    """The coefficient vector of one step, computed on the host (GPU path, tests)."""
    c = np.zeros(N_COEFFS, dtype=dtype)
    _coeffs_host(kid, h, t, lr, aux, c)
    return c


@_jit.kernel
def _coeffs_host(kid, h, t, lr, aux, c):
    _coeffs(kid, h, t, lr, aux, c)
