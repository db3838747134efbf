"""``Optimizer.step`` of every rule and variant, by size and dtype.

Thread pools are pinned to one thread before numpy/numba are imported (see
``benchmarks/__init__.py``): the serial kernel is what ``step`` runs by default.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

import fastopt  # noqa: E402

from . import step_variants  # noqa: E402

VARIANTS = step_variants()


def _preload():
    # One switch kernel serves every rule; load it from numba's cache for both
    # dtypes here, at import: asv's fork server (asv.conf.json) imports this
    # module once and every parameter set's process inherits the machine code
    # instead of loading it again (~0.3 s each).
    for dtype in (np.float32, np.float64):
        opt = fastopt.optimizer("sgd")
        x = np.zeros(4, dtype=dtype)
        opt.step(x, x.copy(), opt.init(x))


_preload()

# This asv_runner re-runs ``setup`` before every timed call (asv#966), so
# setup keeps its arrays per parameter set and hands the same ones back: the
# first setup allocates, touches every page and compiles (or loads from the
# cache) the kernel for the dtype; later ones cost nothing.
_CACHE = {}


def _problem(label, n, dtype):
    key = (label, n, dtype)
    if key not in _CACHE:
        method, options = VARIANTS[label]
        opt = fastopt.optimizer(method, **options)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(n).astype(dtype)
        g = rng.standard_normal(n).astype(dtype)
        value = 1.0 if opt.needs_value else None
        small = x[:16].copy()
        opt.step(small, g[:16].copy(), opt.init(small), value)  # compile/load outside timing
        state = opt.init(x)
        state.slots[...] += 0  # first touch of the (calloc'd) state pages
        _CACHE[key] = (opt, x, g, state, value)
    return _CACHE[key]


class Step:
    """Time of one ``opt.step(x, g, state)`` (in place; compile time excluded)."""

    params = [list(VARIANTS), [1_000, 100_000, 10_000_000], ["float32", "float64"]]
    param_names = ["rule", "n", "dtype"]
    timeout = 120

    def setup(self, rule, n, dtype):
        self.opt, self.x, self.g, self.state, self.value = _problem(rule, n, dtype)

    def time_step(self, rule, n, dtype):
        self.state = self.opt.step(self.x, self.g, self.state, self.value)
