"""L-BFGS-B bounds and ``minimize_many`` in asv (issue 15).

* ``BoundedRosen10.time_*``: one bounded 10-D Rosenbrock solve, fastopt
  ``lbfgs`` with an ``@njit`` objective and scipy's L-BFGS-B (NumPy ``rosen``).
* ``DecayFits.time_*``: 2,000 fits of ``a exp(-b t) + c`` (50 points, gtol
  1e-8, ``a, b >= 0``): ``minimize_many`` in one call (serial driver) and
  fastopt's own Python loop of ``minimize``.  The parallel driver is not
  here: asv forks its benchmarks from a server that imported the suite, and
  a fork after numba's thread pool has started hangs (a CI run timed out on
  it); ``benchmarks/many_compare.py`` measures it.
* ``DecayFits.track_*``: mean iterations and success rate (machine-independent).
* ``DecayFitsMethods``: the same 2,000 fits by ``minimize_many`` with the
  other second-order methods (serial driver): ``scg`` and ``hessian-free``
  with the exact Hessian product ``hessp`` (unbounded: neither takes bounds),
  and ``lbfgs`` with a box per problem (``bounds`` of shape (K, 3, 2));
  ``track_*`` their mean iterations and success rates.

The compiled loops are built at import (asv's fork server imports the suite
once); ``benchmarks/many_compare.py`` prints the ratios with scipy in one run.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize as so  # noqa: E402

import fastopt  # noqa: E402


@numba.njit
def rosen_nd_fg(x):
    """n-D Rosenbrock value and gradient."""
    n = x.shape[0]
    f = 0.0
    g = np.zeros(n)
    for i in range(n - 1):
        t = x[i + 1] - x[i] * x[i]
        f += 100.0 * t * t + (1.0 - x[i]) ** 2
        g[i] += -400.0 * x[i] * t - 2.0 * (1.0 - x[i])
        g[i + 1] += 200.0 * t
    return f, g


@numba.njit
def decay_fg(p, y, t):
    """Sum of squares of ``a exp(-b t) + c - y`` and its gradient."""
    a, b, c = p[0], p[1], p[2]
    e = np.exp(-b * t)
    r = a * e + c - y
    g = np.empty(3)
    g[0] = 2.0 * np.sum(r * e)
    g[1] = -2.0 * np.sum(r * a * t * e)
    g[2] = 2.0 * np.sum(r)
    return np.sum(r * r), g


@numba.njit
def decay_hessp(p, v, y, t):
    """The exact Hessian of :func:`decay_fg` times ``v``."""
    a, b = p[0], p[1]
    e = np.exp(-b * t)
    r = a * e + p[2] - y
    j1 = -a * t * e
    jv = e * v[0] + j1 * v[1] + v[2]
    rte = np.sum(r * t * e)
    out = np.empty(3)
    out[0] = 2.0 * np.sum(e * jv) - 2.0 * rte * v[1]
    out[1] = 2.0 * np.sum(j1 * jv) - 2.0 * rte * v[0] + 2.0 * a * np.sum(r * t * t * e) * v[1]
    out[2] = 2.0 * np.sum(jv)
    return out


X0_10 = np.full(10, 3.0)
BOUNDS_10 = [(-2.0, 2.0)] * 5 + [(1.5, 3.0)] * 5

K = 2000
T = np.linspace(0.0, 5.0, 50)
_rng = np.random.default_rng(0)
_P = np.column_stack([_rng.uniform(1, 3, K), _rng.uniform(0.3, 2, K), _rng.uniform(-0.5, 0.5, K)])
Y = _P[:, :1] * np.exp(-_P[:, 1:2] * T) + _P[:, 2:] + 0.01 * _rng.standard_normal((K, T.size))
X0 = np.tile([1.0, 1.0, 0.0], (K, 1))
DECAY_BOUNDS = [(0.0, None), (0.0, None), (None, None)]
OPTIONS = {"gtol": 1e-8}


def _rosen10():
    return fastopt.minimize(rosen_nd_fg, X0_10, jac=True, method="lbfgs", bounds=BOUNDS_10)


def _many(parallel=False):
    return fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), bounds=DECAY_BOUNDS,
                                 options=OPTIONS, parallel=parallel)  # fmt: skip


#: a box per problem: a, b in [0, 3 x the true value], c free
PER_PROBLEM_BOUNDS = np.stack(
    [np.column_stack([np.zeros(K), 3.0 * _P[:, 0]]), np.column_stack([np.zeros(K), 3.0 * _P[:, 1]]),
     np.tile([-np.inf, np.inf], (K, 1))], axis=1)  # fmt: skip


def _many_method(method):
    """``minimize_many`` on the decay fits by ``method`` (see DecayFitsMethods)."""
    if method == "lbfgs-per-problem-bounds":
        return fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,),
                                     bounds=PER_PROBLEM_BOUNDS, options=OPTIONS,
                                     parallel=False)  # fmt: skip
    return fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method=method,
                                 hessp=decay_hessp, options=OPTIONS, parallel=False)  # fmt: skip


_METHODS = ("scg", "hessian-free", "lbfgs-per-problem-bounds")

_rosen10()
_many(False)
for _m in _METHODS:
    _many_method(_m)


class BoundedRosen10:
    """Seconds per bounded 10-D Rosenbrock solve (compile time excluded)."""

    def time_lbfgs_njit(self):
        _rosen10()

    def time_scipy_lbfgsb(self):
        so.minimize(so.rosen, X0_10, jac=so.rosen_der, method="L-BFGS-B", bounds=BOUNDS_10)


class DecayFits:
    """Seconds for 2,000 three-parameter decay fits."""

    timeout = 300

    def time_minimize_many(self):
        _many(False)

    def time_minimize_loop(self):
        for k in range(K):
            fastopt.minimize(decay_fg, X0[k], args=(Y[k], T), jac=True, method="lbfgs",
                             bounds=DECAY_BOUNDS, options=OPTIONS)  # fmt: skip

    def track_mean_nit(self):
        return float(_many().nit.mean())

    def track_success_rate(self):
        return float(_many().success.mean())


class DecayFitsMethods:
    """Seconds for the 2,000 decay fits by ``minimize_many`` with another method."""

    timeout = 300
    params = list(_METHODS)
    param_names = ["method"]

    def time_minimize_many(self, method):
        _many_method(method)

    def track_mean_nit(self, method):
        return float(_many_method(method).nit.mean())

    def track_success_rate(self, method):
        return float(_many_method(method).success.mean())
