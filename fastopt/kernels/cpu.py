"""CPU step kernels compiled from the rules' single ``elem``/``coeffs`` source.

Every variant of every rule goes through one *switch kernel*
``step(kid, x, g, S, h, t, lr, aux, c)``: ``kid`` indexes
:data:`fastopt.rules.KERNEL_TABLE`.  A switch kernel caches to disk like any
other (a kernel that took the element function as an argument, or a closure
from a factory, would never hit numba's cache), and the branch on ``kid`` is
loop-invariant, so LLVM unswitches it and each case vectorises on its own
(``benchmarks/compare.py`` measures this against the copy bandwidth).

The serial and the parallel kernel share the element source; they differ only
in ``range`` vs ``prange``.  Serial is the default: on small machines a second
thread often stalls for a scheduler tick; :data:`PARALLEL_MIN_SIZE` is where
the parallel kernel starts to pay (see ``benchmarks/compare.py``).
"""

import numba
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
#: the cases written out in _coeffs and _loops below (a new kernel adds one to each)
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
def _loops(kid, x, g, S, c):
    # One loop per kernel id: a switch inside the loop is not unswitched by
    # LLVM and was measured 40x slower.  prange is range in the serial kernel.
    n = x.shape[0]
    if kid == 0:
        for i in numba.prange(n):
            _E0(i, x, g, S, c)  # noqa: F821
    elif kid == 1:
        for i in numba.prange(n):
            _E1(i, x, g, S, c)  # noqa: F821
    elif kid == 2:
        for i in numba.prange(n):
            _E2(i, x, g, S, c)  # noqa: F821
    elif kid == 3:
        for i in numba.prange(n):
            _E3(i, x, g, S, c)  # noqa: F821
    elif kid == 4:
        for i in numba.prange(n):
            _E4(i, x, g, S, c)  # noqa: F821
    elif kid == 5:
        for i in numba.prange(n):
            _E5(i, x, g, S, c)  # noqa: F821
    elif kid == 6:
        for i in numba.prange(n):
            _E6(i, x, g, S, c)  # noqa: F821
    elif kid == 7:
        for i in numba.prange(n):
            _E7(i, x, g, S, c)  # noqa: F821
    elif kid == 8:
        for i in numba.prange(n):
            _E8(i, x, g, S, c)  # noqa: F821
    elif kid == 9:
        for i in numba.prange(n):
            _E9(i, x, g, S, c)  # noqa: F821
    elif kid == 10:
        for i in numba.prange(n):
            _E10(i, x, g, S, c)  # noqa: F821
    elif kid == 11:
        for i in numba.prange(n):
            _E11(i, x, g, S, c)  # noqa: F821
    elif kid == 12:
        for i in numba.prange(n):
            _E12(i, x, g, S, c)  # noqa: F821
    elif kid == 13:
        for i in numba.prange(n):
            _E13(i, x, g, S, c)  # noqa: F821
    elif kid == 14:
        for i in numba.prange(n):
            _E14(i, x, g, S, c)  # noqa: F821
    elif kid == 15:
        for i in numba.prange(n):
            _E15(i, x, g, S, c)  # noqa: F821
    elif kid == 16:
        for i in numba.prange(n):
            _E16(i, x, g, S, c)  # noqa: F821
    elif kid == 17:
        for i in numba.prange(n):
            _E17(i, x, g, S, c)  # noqa: F821


@_jit.inline
def _check(x, g, S):
    # the one check a kernel makes: a shape mismatch would read out of bounds
    # (a rule without slots gets S of shape (0, 0) from a saved state: not read)
    if g.shape[0] != x.shape[0] or (S.shape[1] != x.shape[0] and S.shape[0] != 0):
        raise ValueError("x, g and the state must have the same length")


@_jit.kernel
def step(kid, x, g, S, h, t, lr, aux, c):
    """One update of ``x`` (in place) with kernel ``kid``, serially."""
    _check(x, g, S)
    _coeffs(kid, h, t, lr, aux, c)
    _loops(kid, x, g, S, c)


@_jit.parallel_kernel
def step_parallel(kid, x, g, S, h, t, lr, aux, c):
    """One update of ``x`` (in place) with kernel ``kid``, on numba's threads."""
    _check(x, g, S)
    _coeffs(kid, h, t, lr, aux, c)
    _loops(kid, x, g, S, c)


def coefficients(kid, h, t, lr, aux, dtype):
    """The coefficient vector of one step, computed on the host (GPU path, tests)."""
    c = np.zeros(N_COEFFS, dtype=dtype)
    _coeffs_host(kid, h, t, lr, aux, c)
    return c


@_jit.kernel
def _coeffs_host(kid, h, t, lr, aux, c):
    _coeffs(kid, h, t, lr, aux, c)
