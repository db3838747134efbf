"""The second-order solvers (``scg``, ``hessian-free``, ``adahessian``) in asv.

* ``SolverRosenbrock.time_minimize``: one ``fastopt.minimize`` solve of 2-D
  Rosenbrock from (-1.2, 1) to gtol 1e-5, through the Python driver
  (``scipy.optimize.rosen``/``rosen_der``) and compiled (an ``@njit`` ``fun``
  returning ``(f, g)``, ``jac=True``).  The compiled loops are built at
  import (asv's fork server imports the suite once, see ``asv.conf.json``)
  and again, if need be, in ``setup``: compile time is never timed.
* ``SolverFirstCall.timeraw_first_minimize``: that compile, measured apart: the
  first compiled solve in a fresh interpreter (the loop that calls the
  user's function is compiled per process unless that function is
  ``@njit(cache=True)``; here it is not).
* ``SolverCounts.track_*``: iterations, evaluations, final loss and status on
  a few Moré-Garbow-Hillstrom problems (Python callables, gtol 1e-5); they
  depend on the code only, never on the machine's load, so any change is a
  change of behaviour (scipy's ``test_cg``: "Don't allow them to increase").

``benchmarks/mgh_compare.py`` compares the same solvers with scipy.  Thread
pools are pinned to one thread before numpy/numba are imported (see
``benchmarks/__init__.py``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import rosen, rosen_der  # noqa: E402

import fastopt  # noqa: E402
from fastopt.testing import MGH_PROBLEMS  # noqa: E402

X0_ROSEN = np.array([-1.2, 1.0])


@numba.njit
def rosen_fg(x):
    """2-D Rosenbrock value and gradient, compiled (``jac=True``)."""
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return 100.0 * t * t + (1.0 - a) * (1.0 - a), g


#: method -> options that solve 2-D Rosenbrock to gtol 1e-5 (the default)
ROSEN_OPTIONS = {
    "scg": {},
    "hessian-free": {},
    # the default learning rate 0.15 needs about 70 000 steps here
    "adahessian": {"learning_rate": 1.0, "maxiter": 20_000},
}

DRIVERS = {
    "python": ((rosen, X0_ROSEN), {"jac": rosen_der}),
    "njit": ((rosen_fg, X0_ROSEN), {"jac": True}),
}

_WARM = set()


def _solve(method, driver):
    call, kw = DRIVERS[driver]
    return fastopt.minimize(*call, method=method, options=ROSEN_OPTIONS[method], **kw)


def _warm(method, driver):
    if (method, driver) not in _WARM:  # compiles the loop for rosen_fg (njit), untimed
        _solve(method, driver)
        _WARM.add((method, driver))


def _preload():
    # Compile each solver's loop for rosen_fg at import: the fork server
    # imports this module once and every benchmark process inherits them.
    for method in ROSEN_OPTIONS:
        _warm(method, "njit")


_preload()


class SolverRosenbrock:
    """Seconds per solve of 2-D Rosenbrock (compile time excluded)."""

    params = [list(ROSEN_OPTIONS), list(DRIVERS)]
    param_names = ["method", "driver"]

    def setup(self, method, driver):
        _warm(method, driver)

    def time_minimize(self, method, driver):
        _solve(method, driver)


FIRST_SETUP = """
import numba
import numpy as np
import fastopt

@numba.njit
def rosen_fg(x):
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return 100.0 * t * t + (1.0 - a) * (1.0 - a), g
"""
FIRST_SOLVE = """
fastopt.minimize(rosen_fg, np.array([-1.2, 1.0]), jac=True, method={method!r},
                 options={{"maxiter": 20}})
"""


class SolverFirstCall:
    """Seconds to the first compiled solve in a new process: compiles the loop."""

    params = [list(ROSEN_OPTIONS)]
    param_names = ["method"]
    number = 1
    repeat = (1, 3, 30.0)
    warmup_time = 0.0
    timeout = 180

    def setup(self, method):
        # fill numba's on-disk cache of the solvers' kernels (a cold cache
        # would add their compile time to the first sample)
        code = FIRST_SETUP + FIRST_SOLVE.format(method=method)
        subprocess.run([sys.executable, "-c", code], check=True)

    def timeraw_first_minimize(self, method):
        return FIRST_SOLVE.format(method=method), FIRST_SETUP


#: problems of the MGH set tracked (n = 2 .. 6; Python callables)
TRACKED_PROBLEMS = ("rosenbrock", "beale", "helical_valley", "wood", "powell_singular",
                    "biggs_exp6")  # fmt: skip
#: label -> (method, uses hessp, extra options)
TRACKED_METHODS = {
    "scg": ("scg", False, {}),
    "scg-hessp": ("scg", True, {}),
    "scg-powell": ("scg", False, {"restart": "powell"}),
    "hf": ("hessian-free", True, {}),
    "hf-gn": ("hessian-free", False, {"gauss_newton": True}),
    "adahessian": ("adahessian", True, {}),
}
TRACKED_OPTIONS = {"gtol": 1e-5, "maxiter": 5000}


def _tracked_run(label, problem):
    method, use_hessp, extra = TRACKED_METHODS[label]
    p = MGH_PROBLEMS[problem]
    options = {**TRACKED_OPTIONS, **extra}
    if extra.get("gauss_newton"):
        options["gauss_newton"] = p.gauss_newton
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fastopt.minimize(p.fun, p.x0.copy(), jac=p.grad, method=method,
                               hessp=p.hessp if use_hessp else None, options=options)  # fmt: skip
    return {"nit": int(res.nit), "nfev": int(res.nfev), "njev": int(res.njev),
            "nhev": int(res.get("nhev", 0)), "fun": float(res.fun),
            "status": int(res.status)}  # fmt: skip


class SolverCounts:
    """Iterations, evaluations, final loss and status (machine-independent)."""

    params = [list(TRACKED_METHODS), list(TRACKED_PROBLEMS)]
    param_names = ["method", "problem"]
    timeout = 300

    def setup_cache(self):
        return {(m, p): _tracked_run(m, p) for m in TRACKED_METHODS for p in TRACKED_PROBLEMS}

    def track_nit(self, results, method, problem):
        return results[(method, problem)]["nit"]

    track_nit.unit = "iterations"

    def track_nfev(self, results, method, problem):
        return results[(method, problem)]["nfev"]

    track_nfev.unit = "evaluations"

    def track_njev(self, results, method, problem):
        return results[(method, problem)]["njev"]

    track_njev.unit = "evaluations"

    def track_nhev(self, results, method, problem):
        return results[(method, problem)]["nhev"]

    track_nhev.unit = "products"

    def track_loss(self, results, method, problem):
        return results[(method, problem)]["fun"]

    track_loss.unit = "loss"

    def track_status(self, results, method, problem):
        return results[(method, problem)]["status"]

    track_status.unit = "status"
