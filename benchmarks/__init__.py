"""fastopt's asv suite (``bench_*.py``) and ``compare.py``; see ``README.md``.

Every thread pool is pinned to one thread, here and again at the top of each
``bench_*`` module, before numpy or numba is imported: on a 2-core CI machine
a second BLAS/OpenMP/numba thread only adds scheduler noise, and the step
kernels are serial by default (``fastopt.kernels.cpu.PARALLEL_MIN_SIZE``;
``compare.py`` measures the parallel kernel in a subprocess of its own).

This module imports nothing heavy, so ``compare.py`` can share the variant
list below after pinning the threads itself.
"""

import os

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
for _var in THREAD_VARS:
    os.environ[_var] = "1"

#: Options that select a compiled variant other than a method's default one:
#: label -> (method, options).  Together with every name of
#: ``fastopt.rules.RULES`` (default options) they cover every kernel of
#: ``fastopt.rules.KERNEL_TABLE``; :func:`step_variants` checks that, so a new
#: kernel cannot go unbenchmarked.
EXTRA_VARIANTS = {
    "adam_amsgrad": ("adam", {"amsgrad": True}),
    "rmsprop_centered": ("rmsprop", {"centered": True}),
    "rmsprop_momentum": ("rmsprop", {"momentum": 0.9}),
    "rmsprop_centered_momentum": ("rmsprop", {"centered": True, "momentum": 0.9}),
    "rprop-": ("rprop", {"variant": "rprop-"}),
    "rprop+": ("rprop", {"variant": "rprop+"}),
    "irprop+": ("rprop", {"variant": "irprop+"}),
}


def step_variants():
    """``{label: (method, options)}``: every method of ``RULES``, then the variants.

    Raises
    ------
    RuntimeError
        If a kernel of ``KERNEL_TABLE`` is selected by none of them (add its
        options to :data:`EXTRA_VARIANTS`).
    """
    import fastopt
    from fastopt.rules import KERNEL_TABLE, RULES

    variants = {name: (name, {}) for name in RULES}
    variants.update(EXTRA_VARIANTS)
    covered = {fastopt.optimizer(m, **o).key for m, o in variants.values()}
    missing = [key for key, _ in KERNEL_TABLE if key not in covered]
    if missing:
        raise RuntimeError(
            f"benchmarks: no step variant selects kernel(s) {missing}; "
            "add them to benchmarks.EXTRA_VARIANTS"
        )
    return variants
