"""What every fastopt estimator shares: parameter checks, the solver call, progress.

An estimator builds its flat parameter vector ``w0``, its data arguments
``args = (X, Y, ...)`` and its kernels (``fg``, the Gauss-Newton product
``gn`` and diagonal ``gn_diag``), and :func:`fit_parameters` hands them to
:func:`fastopt.minimize` with ``jac=True``: ``fg`` is a cached ``@njit``
function, so the whole run is one compiled loop, and in minibatch mode the
driver slices ``X`` and ``Y`` (the only arrays in ``args``).
"""

import numbers
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .. import _status
from .._methods import get_method
from .._minimize import minimize
from .._progress import Progress

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.4 and 1.5

    def validate_data(estimator, /, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


#: methods that get the model's Gauss-Newton product as ``hessp`` (for the
#: linear models it is the exact Hessian; for the MLPs the Gauss-Newton
#: matrix, positive semi-definite, which is what these methods need)
HESSP_METHODS = frozenset({"scg", "adahessian"})
#: Curvature products of ``scg``: "auto" gives it the model's exact product
#: where the model asks for it (``scg_exact=True``: a fused one-pass product,
#: as cheap as a gradient, or an MLP with dropout, whose gradients at two
#: points see different masks) and leaves scg its finite difference of two
#: gradients otherwise (the 10-class softmax product costs three BLAS passes,
#: 1.5 gradients); "exact" and "fd" force one or the other
#: (``benchmarks/models_compare.py`` measures all three).
SCG_PRODUCTS = "auto"
#: methods run on the full data by ``batch_size="auto"`` (their curvature
#: tests and line searches compare values across steps, which minibatch noise
#: would break)
FULL_BATCH_METHODS = frozenset({"scg", "lbfgs", "hessian-free"})
#: ``lbfgs`` options of the linear models: scikit-learn's ``maxls = 50``, and
#: no f test (``ftol = 0``), so that ``tol`` alone (the gradient test) ends a
#: fit, or a line search that rounding stops.  scipy's default ftol (2.2e-9)
#: stops weakly regularised fits early; scikit-learn's (64 eps) stops the
#: raw-digits fit at ``tol=1e-10`` with a gradient of 2e-7 and coefficients
#: 1.4e-4 away from the optimum, where ftol = 0 gets within 1.2e-6
#: (``tests/test_models.py``).
#: No evaluation limit but ``max_iter`` (``maxfun``, 15000 by default as
#: scipy's, would end the raw-digits fit, which needs about 15000 iterations).
LINEAR_LBFGS = {"ftol": 0.0, "maxls": 50, "maxfun": None}


def solver_fields(name):
    """The option names of the second-order method ``name`` (empty for the others)."""
    from ..solvers import SOLVERS

    module = SOLVERS.get(name)
    return module.Options._fields if module is not None else ()


def check_common_params(est, extra=()):
    """Validate the parameters every estimator has; returns the method's name.

    ``extra``: solver names the estimator runs itself (the MLPs' ``"kfac"``).
    Raises ValueError with the parameter's name and value, like scikit-learn.
    """
    if isinstance(est.solver, str) and est.solver in extra:
        name = est.solver
    else:  # canonical ("hf" -> "hessian-free"); ValueError if unknown
        name = get_method(est.solver).name
    mi = est.max_iter
    if isinstance(mi, bool) or not isinstance(mi, numbers.Integral) or mi < 1:
        raise ValueError(f"max_iter must be an int >= 1; got {mi!r}")
    tol = est.tol
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a float >= 0; got {tol!r}")
    bs = est.batch_size
    if not (bs is None or bs == "auto" or (
        isinstance(bs, numbers.Integral) and not isinstance(bs, bool) and bs >= 1
    )):  # fmt: skip
        raise ValueError(f"batch_size must be 'auto', None or an int >= 1; got {bs!r}")
    so = est.solver_options
    if so is not None and not isinstance(so, dict):
        raise ValueError(f"solver_options must be a dict or None; got {so!r}")
    return name


def resolve_batch_size(batch_size, method, n_samples):
    """The minibatch size to use, or None for full-batch steps.

    ``"auto"``: ``min(200, n_samples)`` (scikit-learn's MLP default) for the
    first-order methods and AdaHessian, the full data for ``scg``, ``lbfgs``
    and ``hessian-free``.  A batch of all samples runs full-batch steps.
    """
    if batch_size == "auto":
        batch_size = None if method in FULL_BATCH_METHODS else min(200, n_samples)
    if batch_size is None or batch_size >= n_samples:
        return None
    return int(batch_size)


def seed_from(random_state):
    """A 31-bit integer seed drawn from ``random_state`` (scikit-learn's convention)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class Monitor:
    """The per-step callback: epoch losses, early stopping and the progress bar.

    In minibatch mode a step's ``fun`` is the loss of its batch; the epoch
    loss is their average weighted by batch size (scikit-learn's
    ``loss_curve_``).  Early stopping (``n_iter_no_change`` epochs without an
    improvement of ``tol`` over the best loss) raises ``StopIteration``,
    which :func:`fastopt.minimize` reports as status 99.
    """

    def __init__(self, n_samples, batch_size, total, verbose, label, tol=0.0,
                 n_iter_no_change=None):  # fmt: skip
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.n_batches = 1 if batch_size is None else -(-n_samples // batch_size)
        self.total = total
        self.verbose = bool(verbose)
        self.label = label
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.curve = []
        self.best = np.inf
        self.bad_epochs = 0
        self.stopped_early = False
        self._acc = 0.0
        self._bar = None

    def __call__(self, intermediate_result):
        t = intermediate_result.nit
        f = float(intermediate_result.fun)
        if self.batch_size is None:
            self.curve.append(f)
            self._show(t, f)
            return
        k = (t - 1) % self.n_batches
        size = self.batch_size if k < self.n_batches - 1 else (
            self.n_samples - (self.n_batches - 1) * self.batch_size
        )  # fmt: skip
        self._acc += f * size
        if k < self.n_batches - 1:
            return
        loss = self._acc / self.n_samples
        self._acc = 0.0
        self.end_epoch(loss)

    def end_epoch(self, loss):
        """Record an epoch's ``loss``; raises ``StopIteration`` to stop early."""
        self.curve.append(loss)
        self._show(len(self.curve), loss)
        if self.n_iter_no_change is not None:
            if loss > self.best - self.tol:
                self.bad_epochs += 1
            else:
                self.bad_epochs = 0
            self.best = min(self.best, loss)
            if self.bad_epochs >= self.n_iter_no_change:
                self.stopped_early = True
                raise StopIteration

    def _show(self, done, loss):
        if not self.verbose:
            return
        if self._bar is None:  # the shared display (fastopt/_progress.py)
            unit = "iterations" if self.batch_size is None else "epochs"
            self._bar = Progress(self.label, total=self.total, unit=unit)
        self._bar.update(done, loss=loss)

    def close(self):
        if self._bar is not None:
            self._bar.close()


#: ``(fg, method, minibatch)`` of the fits run in this process (see :func:`driven_fg`)
_FITTED = set()
#: a first fit of more solver steps than this runs compiled at once: at about
#: 25-40 us of Python per step the Python driver would then cost about as
#: much as compiling the loop (2-4 s)
PYTHON_DRIVER_STEPS = 20_000


def driven_fg(fg, method, minibatch, steps=0):
    """``fg`` as the first fit of its kind in this process gives it to :func:`minimize`.

    An ``@njit`` ``fg`` makes the solver compile its whole loop with ``fg``
    built in (a per-objective specialisation, 2-4 s of compiling on a cold
    cache, cached to disk afterwards); a Python function runs the solver's
    Python driver on the same compiled kernels (the same iterates: one
    source, see :mod:`fastopt.solvers._lazy_loop`), which compiles nothing
    more and costs a few tens of microseconds of Python per iteration.  So
    the first fit of an ``(fg, method, minibatch)`` in a process runs the
    Python driver and later ones the compiled loop: a tiered JIT, so a single
    fit does not wait for a loop it runs once, and repeated fits
    (cross-validation, benchmarks after a warm-up) run compiled.  A fit of
    more than :data:`PYTHON_DRIVER_STEPS` solver steps (``steps``: the
    iteration limit, or epochs times batches) runs compiled from the start.
    """
    key = (fg, method, minibatch)
    if key in _FITTED or steps > PYTHON_DRIVER_STEPS:
        _FITTED.add(key)
        return fg
    _FITTED.add(key)

    def python_fg(w, *args):
        return fg(w, *args)

    return python_fg


def fit_parameters(est, method, fg, w0, args, gn, gn_diag, n_samples, *,
                   record=False, n_iter_no_change=None, scg_exact=True,
                   defaults=None, check_args=None, full_batch=False):  # fmt: skip
    """Minimize ``fg`` from ``w0`` with the estimator's solver settings.

    Parameters
    ----------
    est : estimator
        Supplies ``batch_size``, ``max_iter``, ``tol``, ``random_state``,
        ``solver_options`` and ``verbose``.
    method : str
        The canonical method name (from :func:`check_common_params`).
    fg, gn, gn_diag : numba dispatchers
        ``fg(w, *args) -> (f, g)``, ``gn(w, v, *args) -> G v`` and
        ``gn_diag(w, *args) -> diag(G)``.
    n_samples : int
        Rows of the data in ``args``.
    record : bool
        Keep the loss of every epoch (minibatch) in ``Monitor.curve``.
    n_iter_no_change : int or None
        Minibatch mode: stop after this many epochs without improvement.
    scg_exact : bool
        Whether ``scg`` should get ``gn`` (see :data:`SCG_PRODUCTS`).
    defaults : dict or None
        Options of ``method`` that the model sets (e.g. :data:`LINEAR_LBFGS`);
        the estimator's ``solver_options`` override them.
    check_args : tuple or None
        The ``args`` of ``fg`` for the final gradient test of a minibatch run
        that used all its epochs (default ``args``; the MLPs pass theirs
        without dropout, whose masks would make the test random).
    full_batch : bool
        Run full batch whatever ``est.batch_size`` says (``fg`` holds the
        data itself: the distributed reductions of the dask path).

    Returns
    -------
    res : scipy.optimize.OptimizeResult
    monitor : Monitor
    n_iter : int
        Epochs (minibatch mode) or iterations (full batch).

    Notes
    -----
    ``max_iter`` counts iterations of a full-batch method and epochs of a
    minibatch one; ``tol`` is the gradient inf-norm test of the full-batch
    methods (scikit-learn's lbfgs test) and the early-stopping threshold in
    minibatch mode.  Second-order methods get the model's curvature: the
    Gauss-Newton product as ``gauss_newton`` (``hessian-free``) or ``hessp``
    (``adahessian``; ``scg`` where the model asks, see :data:`SCG_PRODUCTS`), and
    its diagonal as ``diagonal`` where the method has that option.

    A run that did not converge raises scikit-learn's ``ConvergenceWarning``
    (as scikit-learn's own estimators do): a non-finite or diverging run, a
    stalled line search, ``max_iter`` used up in full batch, all epochs run
    with early stopping on, and a minibatch run that used all its epochs
    without early stopping whose full-data gradient inf-norm at the result is
    above ``tol`` (one extra gradient evaluation).
    """
    batch_size = None if full_batch else resolve_batch_size(est.batch_size, method, n_samples)
    seed = seed_from(est.random_state)
    options = {}
    if batch_size is None:
        # minibatch runs take no gtol (minimize warns that it is ignored):
        # ``tol`` reaches them through the monitor's early stopping and the
        # full-gradient test at the result (below)
        options["gtol"] = float(est.tol)
        options["maxiter"] = int(est.max_iter)
        total = int(est.max_iter)
    else:
        options.update(batch_size=batch_size, epochs=int(est.max_iter), seed=seed)
        total = int(est.max_iter)
    fields = solver_fields(method)
    hessp = None
    if "gauss_newton" in fields:
        options["gauss_newton"] = gn
    elif method in HESSP_METHODS:
        exact = SCG_PRODUCTS == "exact" or (SCG_PRODUCTS == "auto" and scg_exact)
        if method != "scg" or exact:
            hessp = gn
    if "diagonal" in fields:
        options["diagonal"] = gn_diag
    if "seed" in fields:
        options["seed"] = seed
    options.update(defaults or {})
    options.update(est.solver_options or {})
    early = n_iter_no_change if batch_size is not None else None
    monitor = Monitor(n_samples, batch_size, total, est.verbose, type(est).__name__,
                      tol=float(est.tol), n_iter_no_change=early)  # fmt: skip
    # The callback costs ~8 us per step (the compiled loop returns to Python):
    # only pay it when something needs it.
    need_cb = est.verbose or (batch_size is not None and (record or early is not None))
    try:
        steps = total if batch_size is None else total * -(-n_samples // batch_size)
        res = minimize(driven_fg(fg, method, batch_size is not None, steps), w0, args=args,
                       method=method, jac=True, hessp=hessp,
                       options=options, callback=monitor if need_cb else None)  # fmt: skip
    finally:
        monitor.close()
    status = res.status
    if batch_size is None:
        n_iter = int(res.nit)
    else:
        n_iter = -(-int(res.nit) // monitor.n_batches)
    if status in (_status.NONFINITE_F, _status.NONFINITE_G, _status.NONFINITE_X,
                  _status.NONFINITE_H, _status.DIVERGED):  # fmt: skip
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} stopped: {res.message} "
            "Try a smaller learning rate (solver_options) or scaling the features.",
            ConvergenceWarning,
            stacklevel=3,
        )
    elif status == _status.LINESEARCH:
        # rounding stopped the solver short of tol (a tol below what the
        # data's scale allows), not the iteration budget
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} stopped before tol={est.tol} was met "
            f"({res.message}) Loosen tol or scale the features.",
            ConvergenceWarning,
            stacklevel=3,
        )
    elif status in (_status.MAXITER, _status.MAXFEV) or (
        status == _status.EPOCHS and early is not None
    ):
        what = "iterations" if batch_size is None else "epochs"
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} did not converge in "
            f"max_iter={est.max_iter} {what} ({res.message}) Increase max_iter, "
            "loosen tol or scale the features.",
            ConvergenceWarning,
            stacklevel=3,
        )
    elif status == _status.EPOCHS and early is None:
        # minibatch without early stopping: the run ends on its epoch budget
        # whatever the gradient, so test the full-data gradient (the
        # full-batch methods' gtol test) instead of reporting success blindly
        _, g = fg(res.x, *(args if check_args is None else check_args))
        warn_if_gradient_above_tol(est, method, g, stacklevel=4)
    return res, monitor, n_iter


def warn_if_gradient_above_tol(est, method, g, stacklevel):
    """ConvergenceWarning when a minibatch run's full-data gradient ``g`` is above ``est.tol``.

    A minibatch run without early stopping ends on its epoch budget whatever
    the gradient: this is the full-batch methods' gtol test, at the result.
    """
    gnorm = float(np.max(np.abs(g))) if len(g) else 0.0
    if not gnorm <= est.tol:
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} did not converge in "
            f"max_iter={est.max_iter} epochs: the gradient inf-norm at the result is "
            f"{gnorm:.3g} > tol={est.tol}. Increase max_iter, tune the learning rate "
            "(solver_options), loosen tol or scale the features.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
