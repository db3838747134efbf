"""``fastopt.minimize`` through both drivers, and counts that do not vary with load.

* ``Rosenbrock.time_minimize``: one solve of the 2-D Rosenbrock problem from
  (-1.2, 1) with Python callables (``scipy.optimize.rosen``/``rosen_der``:
  the Python driver) and with an ``@njit`` ``fun`` returning ``(f, g)`` with
  ``jac=True`` (the compiled driver).  The compiled driver's loop is compiled
  in ``setup`` (the objective has no ``cache=True``, so neither has the loop), so only
  the solve is timed; ``bench_firstcall`` measures the compile.
* ``Counts.track_*``: iterations, evaluations and final loss of a few
  method/problem pairs (scipy's ``test_cg`` pins them: "Don't allow them to
  increase"); they depend on the code only, never on machine load.

Thread pools are pinned to one thread before numpy/numba are imported (see
``benchmarks/__init__.py``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import numba  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import rosen, rosen_der  # noqa: E402

import fastopt  # noqa: E402

X0_ROSEN = np.array([-1.2, 1.0])


@numba.njit
def rosen_fg(x):
    """Rosenbrock's function and its gradient (any n >= 2), compiled."""
    f = 0.0
    g = np.zeros_like(x)
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g


# An ill-conditioned quadratic, 0.5 x'Ax with eigenvalues 1 .. 100, from ones(10).
_A = np.diag(np.logspace(0.0, 2.0, 10))


def quad(x):
    return 0.5 * (x @ (_A @ x))


def quad_grad(x):
    return _A @ x


PROBLEMS = {
    "rosen": (rosen, rosen_der, X0_ROSEN),
    "quad10": (quad, quad_grad, np.ones(10)),
}

#: method -> options that solve Rosenbrock to gtol=1e-5 (the default)
ROSEN_OPTIONS = {
    "adam": {"learning_rate": 0.05, "maxiter": 20_000},
    "nag": {"learning_rate": 1e-3, "maxiter": 20_000},
    "adamax": {"learning_rate": 0.05, "maxiter": 20_000},
}

#: "method/problem" -> options; every pair converges (status 0)
TRACKED = {
    "adam/rosen": {"learning_rate": 0.05, "maxiter": 20_000},
    "nag/rosen": {"learning_rate": 1e-3, "maxiter": 20_000},
    "adamax/rosen": {"learning_rate": 0.05, "maxiter": 20_000},
    "adagrad/rosen": {"learning_rate": 0.5, "maxiter": 20_000},
    "rmsprop/quad10": {"learning_rate": 1e-3, "maxiter": 20_000},
    "adadelta/quad10": {"learning_rate": 1.0, "maxiter": 20_000},
    "momentum/quad10": {"learning_rate": 1e-3, "maxiter": 20_000},
}


def _preload():
    # Load the Python driver's cached kernels here, at import: asv's fork
    # server (asv.conf.json) imports this module once and every benchmark
    # process inherits them.  (The compiled driver's loop is compiled per
    # rule and objective, so it is left to ``Rosenbrock.setup``.)
    fastopt.minimize(rosen, X0_ROSEN, jac=rosen_der, method="adam", options={"maxiter": 2})


_preload()
_WARM = set()


class Rosenbrock:
    """Time of one solve of 2-D Rosenbrock (compile time excluded)."""

    params = [list(ROSEN_OPTIONS), ["python", "njit"]]
    param_names = ["method", "driver"]

    def setup(self, method, driver):
        if driver == "python":
            self.call = (rosen, X0_ROSEN)
            self.kw = {"jac": rosen_der}
        else:
            self.call = (rosen_fg, X0_ROSEN)
            self.kw = {"jac": True}
        self.kw.update(method=method, options=ROSEN_OPTIONS[method])
        if (method, driver) not in _WARM:  # compile (njit) / load kernels, untimed
            fastopt.minimize(*self.call, **self.kw)
            _WARM.add((method, driver))

    def time_minimize(self, method, driver):
        fastopt.minimize(*self.call, **self.kw)


class Counts:
    """Iterations, evaluations and final loss (machine-independent)."""

    params = [list(TRACKED)]
    param_names = ["method/problem"]

    def setup_cache(self):
        out = {}
        for pair, options in TRACKED.items():
            method, problem = pair.split("/")
            fun, jac, x0 = PROBLEMS[problem]
            res = fastopt.minimize(fun, x0, jac=jac, method=method, options=options)
            out[pair] = {"nit": res.nit, "nfev": res.nfev, "fun": res.fun,
                         "status": res.status}  # fmt: skip
        return out

    def track_nit(self, results, pair):
        return results[pair]["nit"]

    track_nit.unit = "iterations"

    def track_nfev(self, results, pair):
        return results[pair]["nfev"]

    track_nfev.unit = "evaluations"

    def track_loss(self, results, pair):
        return results[pair]["fun"]

    track_loss.unit = "loss"

    def track_status(self, results, pair):
        return results[pair]["status"]

    track_status.unit = "status"
