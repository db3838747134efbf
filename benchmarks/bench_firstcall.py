"""First-call time, measured apart: each sample is a fresh Python process.

``timeraw_*`` benchmarks return code that asv runs in a new interpreter and
times (interpreter start-up excluded, setup code excluded).  ``setup`` runs
the same code once first, so numba's on-disk cache is warm: what is measured
is what a user pays in every new process after the first, namely importing
fastopt (numpy, scipy.optimize, numba) and loading the cached kernels.  With
an ``@njit`` objective without ``cache=True`` the loop that calls it is
compiled in every process, so the ``njit`` row is the compile time of the
compiled driver (with ``cache=True`` the loop is cached too:
``benchmarks/compare.py`` measures that case).

Thread pools are pinned to one thread before numpy/numba are imported (see
``benchmarks/__init__.py``); the timed processes inherit the environment.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

IMPORT = "import fastopt"

# A short solve (100 Adam steps on Rosenbrock): what is measured is the
# first-call cost, not the length of the solve.
PYTHON_SETUP = """
import numpy as np
import fastopt
from scipy.optimize import rosen, rosen_der
"""
PYTHON_MINIMIZE = """
fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="adam",
                 options={"learning_rate": 0.05, "maxiter": 100})
"""

NJIT_SETUP = """
import numba
import numpy as np
import fastopt

@numba.njit
def rosen_fg(x):
    f = 0.0
    g = np.zeros_like(x)
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g
"""
# The same objective with cache=True in a module file (written by the
# benchmark's setup): the loop built on it is cached too.
CACHED_MODULE = NJIT_SETUP.replace("import fastopt\n", "").replace(
    "@numba.njit\n", "@numba.njit(cache=True)\n"
)
CACHED_SETUP = """
import sys
sys.path.insert(0, {moddir!r})
import numpy as np
import fastopt
from rosen_cached import rosen_fg
rosen_fg(np.array([-1.2, 1.0]))
"""
NJIT_MINIMIZE = """
fastopt.minimize(rosen_fg, np.array([-1.2, 1.0]), jac=True, method="adam",
                 options={"learning_rate": 0.05, "maxiter": 100})
"""


def _warm_cache(*code):
    """Run ``code`` once in a new process: fills numba's cache if it is cold."""
    subprocess.run([sys.executable, "-c", "\n".join(code)], check=True)


class _Raw:
    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0.0
    timeout = 120


class Import(_Raw):
    """Seconds to ``import fastopt`` in a fresh interpreter (numpy, scipy, numba)."""

    def timeraw_import(self):
        return IMPORT


class FirstMinimize(_Raw):
    """Seconds to the first solve with Python callables (cached kernels)."""

    def setup(self):
        _warm_cache(PYTHON_SETUP, PYTHON_MINIMIZE)

    def timeraw_import_and_first_minimize(self):
        """From the first line of the program to the end of the first solve."""
        return PYTHON_SETUP + PYTHON_MINIMIZE

    def timeraw_first_minimize(self):
        """The first solve alone (fastopt already imported): loads cached kernels."""
        return PYTHON_MINIMIZE, PYTHON_SETUP


class FirstMinimizeNjit(_Raw):
    """Seconds to the first solve with an ``@njit`` objective: compiles its loop."""

    def setup(self):
        _warm_cache(NJIT_SETUP, NJIT_MINIMIZE)

    def timeraw_first_minimize(self):
        return NJIT_MINIMIZE, NJIT_SETUP


class FirstMinimizeNjitCached(_Raw):
    """Seconds to the first solve with an ``@njit(cache=True)`` objective from a
    file: loads the loop built on it from numba's cache."""

    def setup(self):
        self.moddir = tempfile.mkdtemp(prefix="fastopt-asv-")
        with open(f"{self.moddir}/rosen_cached.py", "w") as fh:
            fh.write(CACHED_MODULE)
        _warm_cache(CACHED_SETUP.format(moddir=self.moddir), NJIT_MINIMIZE)

    def timeraw_first_minimize(self):
        return NJIT_MINIMIZE, CACHED_SETUP.format(moddir=self.moddir)
