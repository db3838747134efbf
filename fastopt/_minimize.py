"""``fastopt.minimize``: scipy's contract, fastopt's methods.

Data flow: validate (x0 to a private 1-D float copy, args to a tuple, options
to the method's NamedTuple, unknown options warn), look the method up in the
:data:`METHODS` registry, adapt ``fun``/``jac``/``callback`` to one
:class:`~fastopt._objective.Objective`, let the method's runner loop, and
build the ``OptimizeResult`` from the status table in :mod:`fastopt._status`.
"""

import inspect
import math
import warnings

import numpy as np

from . import _device, _progress, _status
from ._methods import COMMON, FIRST_ORDER_ONLY, get_method
from ._objective import Objective
from ._user import (
    GLUE_CACHE_SIZE,
    BoundedCache,
    compiled_functions,
    first_values,
    python_functions,
)
from ._validation import (
    NO_LIMIT,
    as_bounds,
    as_callable,
    as_count,
    as_jac,
    as_options,
    as_real,
    as_seed,
    as_x0,
    is_jitted,
)


def _adapt_callback(callback, method_name):
    """Both scipy callback forms -> ``cb(x, f, g, nit)``."""
    if callback is None:
        return None
    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        params = set()
    if params == {"intermediate_result"}:

        def cb(x, f, g, nit):
            from scipy.optimize import OptimizeResult

            res = OptimizeResult(x=x.copy(), fun=f, nit=nit)
            if g is not None:
                res["jac"] = g.copy()
            callback(intermediate_result=res)
    else:

        def cb(x, f, g, nit):
            callback(np.copy(x))

    return cb


def minimize(fun, x0, args=(), method=None, jac=None, hess=None, hessp=None,
             bounds=None, constraints=(), tol=None, callback=None, options=None):  # fmt: skip
    """Minimize a scalar function of one or more variables.

    The call and the result follow :func:`scipy.optimize.minimize`.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float`` (or ``(float, ndarray)`` with
        ``jac=True``).  In minibatch mode it must return the *mean* loss over
        the batch it is given.  A numba ``@njit`` function (with an ``@njit``
        ``jac``, or ``jac=True``) runs the whole loop compiled.
    x0 : array_like, shape (n,)
        Start; float32 stays float32 and float64 stays float64 (integers
        become float64, a scalar a 1-element vector).  Never modified.
    args : tuple, optional
        Extra arguments passed to ``fun``, ``jac`` and ``hessp``.
    method : str, optional
        One of :data:`fastopt.METHODS`.  Default: ``"lbfgs"`` (what
        :func:`scipy.optimize.minimize` picks for an unconstrained problem:
        it solves 2-D Rosenbrock from (-1.2, 1) with its defaults), or
        ``"adam"`` when the minibatch options ``batch_size``/``epochs`` are
        given (the full-batch quasi-Newton method cannot use minibatches).
    jac : {callable, True, '2-point', '3-point', None}, optional
        Gradient: a callable ``jac(x, *args)``; True if ``fun`` returns
        ``(f, g)``; or a finite-difference scheme (None: '2-point').
    hess : ignored
        Accepted for scipy compatibility; fastopt's methods use ``hessp``.
    hessp : callable, optional
        ``hessp(x, v, *args)``: Hessian times ``v`` (second-order methods).
    bounds : sequence of (min, max) pairs or `scipy.optimize.Bounds`, optional
        Kept by projection after every step.
    constraints : ()
        Not supported: anything else raises ValueError.
    tol : float, optional
        The method's tolerances, as scipy sets them: ``gtol`` unless
        ``options`` gives it (``lbfgs``: ``ftol`` and ``gtol``).
    callback : callable, optional
        ``callback(xk)`` or ``callback(intermediate_result: OptimizeResult)``,
        after every update; raising ``StopIteration`` ends the run (status 99).
    options : dict, optional
        The method's hyperparameters (e.g. ``learning_rate``, ``b1``), plus:
        ``maxiter`` (update steps, a whole number or ``np.inf`` for no
        limit; default 1000, ``lbfgs`` 15000), ``gtol`` (inf-norm of the
        gradient, of the projected gradient with bounds; default 1e-5;
        ignored with a warning in minibatch mode), ``disp``, ``return_all``,
        ``schedule`` (first-order: a :mod:`fastopt.schedules` object or a
        callable ``t -> lr``), ``parallel``, and the minibatch options
        ``batch_size``, ``epochs`` (default 1), ``shuffle`` (default True),
        ``seed``.  ``device="cuda"`` (automatic when ``x0`` is a device array)
        keeps ``x`` and the optimizer state on the GPU
        (:func:`fastopt.drivers.cuda_loop.minimize_device`); ``host_result=True``
        returns ``res.x`` as a NumPy array.  Unknown options warn with
        ``OptimizeWarning``.

    Returns
    -------
    res : scipy.optimize.OptimizeResult
        ``x, fun, jac, nit, nfev, njev, status, success, message`` (and
        ``nhev`` for second-order methods, ``allvecs`` with ``return_all``).
        In minibatch mode ``fun`` and ``jac`` are the full-data values at the
        final ``x``.  If ``fun`` or ``jac`` turned NaN/inf, ``x`` is the last
        iterate with finite values and ``success`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import rosen, rosen_der
    >>> import fastopt
    >>> res = fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der,
    ...                        method="adam",
    ...                        options={"learning_rate": 0.05, "maxiter": 20000})
    >>> res.success, np.round(res.x, 4)
    (True, array([1., 1.]))
    """
    # a call that repeats a validated one (same @njit functions, method,
    # options, x0 shape and dtype, argument types) skips the validation: the
    # fixed cost of a call, issue 11 (see _Plan; device calls make none)
    plain = (callback is None and hess is None and hessp is None
             and type(x0) is np.ndarray and type(args) is tuple)  # fmt: skip
    if plain:
        key = _plan_key(fun, x0, args, method, jac, tol, constraints, options, bounds)
        try:
            plan = _PLANS.get(key) if key is not None else None
        except TypeError:  # an unhashable option value or argument type: never cached
            plan = key = None
        if plan is not None:
            res = plan(x0, args)
            if res is not None:
                return res
    if (type(x0) is not np.ndarray and _device.is_device_array(x0)) or (
        isinstance(options, dict) and options.get("device") not in (None, "cpu")
    ):
        from .drivers.cuda_loop import minimize_device

        return minimize_device(fun, x0, args, method or "adam", jac, hess, hessp, bounds,
                               constraints, tol, callback, options)  # fmt: skip
    # scipy.optimize costs ~0.3 s to import: not at `import fastopt`
    from scipy.optimize import OptimizeWarning

    fun = as_callable(fun, "fun", optional=False)
    jac = as_jac(jac)
    hessp = as_callable(hessp, "hessp")
    callback = as_callable(callback, "callback")
    opts = as_options(options)
    if method is None:
        minibatch = opts.get("batch_size") is not None or opts.get("epochs") is not None
        method = "adam" if minibatch else "lbfgs"
    entry = get_method(method)
    x = as_x0(x0)
    if entry.kind == "second-order" and x.dtype != np.float64:
        # the second-order solvers compute (and return) float64: evaluate the
        # user's functions there too, so finite-difference steps and the
        # gradients they get are float64 (a float32 gradient met float64
        # vectors in numba's dot and failed to compile)
        x = x.astype(np.float64)
    if not isinstance(args, tuple):
        args = (args,)
    if constraints not in ((), None, []) and not (
        isinstance(constraints, list | tuple) and len(constraints) == 0
    ):
        raise ValueError(f"method {entry.name!r} does not handle constraints; "
                         "use bounds, or scipy.optimize.minimize(method='SLSQP')")  # fmt: skip
    if tol is not None:
        tol = as_real(tol, "tol")
        for name in entry.tol_options:
            opts.setdefault(name, tol)
    gtol_given = "gtol" in opts
    common = {k: opts.pop(k, v) for k, v in COMMON.items()}
    if entry.kind != "first-order":
        for k in FIRST_ORDER_ONLY:
            if k in opts:
                raise ValueError(f"option {k!r} applies to first-order methods only")
    method_opts, unknown = entry.options(opts)
    if unknown:
        warnings.warn(f"Unknown solver options for {entry.name!r}: {', '.join(unknown)}",
                      OptimizeWarning, stacklevel=2)  # fmt: skip
    hessp_unused = hessp is not None and not entry.uses_hessp
    if hess is not None or hessp_unused:
        warnings.warn(
            f"Method {entry.name} does not use Hessian information "
            f"({'hess' if hess is not None else 'hessp'}).",
            RuntimeWarning,
            stacklevel=2,
        )
    if hessp_unused:
        hessp = None  # a Python hessp must not keep an @njit objective out of the compiled loop
    maxiter = common["maxiter"]
    if maxiter is None:
        maxiter = entry.default_maxiter
    else:
        maxiter = as_count(maxiter, "maxiter", allow_inf=True)
    gtol = as_real(common["gtol"], "gtol")
    seed = as_seed(common["seed"])
    batch_size = common["batch_size"]
    epochs = common["epochs"]
    if batch_size is not None:
        entry.check_minibatch()
        batch_size = as_count(batch_size, "batch_size", minimum=1)
        epochs = 1 if epochs is None else as_count(epochs, "epochs", minimum=1)
        if common["maxiter"] is None:
            maxiter = NO_LIMIT
        from ._batching import check_batch_args

        check_batch_args(args)
        if gtol_given:
            warnings.warn(
                "gtol is ignored in minibatch mode (a minibatch gradient is not the full "
                "gradient): the run stops after `epochs` or `maxiter`",
                OptimizeWarning,
                stacklevel=2,
            )
        if entry.name == "rprop":
            warnings.warn(
                "rprop with minibatches: sign flips from minibatch noise break its step "
                "adaptation (the lecture's 'Problems with Rprop'); prefer rmsprop or adam",
                UserWarning,
                stacklevel=2,
            )
    elif epochs is not None:
        raise ValueError("epochs needs batch_size (minibatch mode)")

    lb, ub = as_bounds(bounds, x)
    counter = {}
    compiled = (
        is_jitted(fun) and (jac is True or is_jitted(jac)) and (hessp is None or is_jitted(hessp))
    )
    if compiled:
        fun_only, fg, grad, grad_calls_fun, first = compiled_functions(fun, jac, x, args)
    else:
        fun_only, fg, grad, grad_calls_fun, first = python_functions(fun, jac, x, args, counter,
                                                                     lb, ub)  # fmt: skip

    callback, progress = _adapt_callback(callback, entry.name), None
    if common["disp"]:  # a progress line (fastopt/_progress.py)
        callback, progress = _progress.minimize_callback(callback, entry.name, maxiter,
                                                         batch_size, epochs, args)  # fmt: skip
    obj = Objective(
        x0=x, fun=fun_only, fg=fg, grad=grad, grad_calls_fun=grad_calls_fun,
        hessp=hessp, args=args, compiled=compiled, lb=lb, ub=ub,
        maxiter=maxiter, gtol=gtol, batch_size=batch_size, epochs=epochs,
        shuffle=bool(common["shuffle"]), seed=seed,
        callback=callback,
        return_all=bool(common["return_all"]), disp=bool(common["disp"]),
        first=first, fd_gradient=not (compiled or jac is True or callable(jac)),
    )  # fmt: skip
    try:
        out = entry.run(obj, method_opts)
    finally:
        if progress is not None:
            progress.close()
    # the validation call at x0 is one more evaluation, unless the run reused it
    res = _result(out, obj, counter, validated=compiled)
    if (plain and key is not None and compiled and not unknown and x0.ndim == 1
            and x0.dtype in (np.float32, np.float64) and batch_size is None and not common["disp"]
            and not common["return_all"] and common["device"] is None
            and opts.get("schedule") is None and entry.reusable(method_opts)):  # fmt: skip
        _PLANS[key] = _Plan(entry, method_opts, obj, fun, jac)
    return res


OptimizeResult = None


def _make_result(x, f, g, status, nit, nfev, njev):
    """The ``OptimizeResult`` fields every method returns."""
    global OptimizeResult
    if OptimizeResult is None:  # scipy.optimize costs ~0.3 s to import: not at import
        from scipy.optimize import OptimizeResult
    return OptimizeResult(
        x=x, fun=float(f), jac=g if type(g) is np.ndarray else np.asarray(g), nit=int(nit),
        nfev=nfev, njev=njev, status=int(status), success=status in _status.SUCCESSFUL,
        message=_status.MESSAGES[status],
    )  # fmt: skip


def _result(out, obj, counter, validated):
    """The ``OptimizeResult`` of a run: ``out`` is what the method's runner returned."""
    if "fun" not in out or "jac" not in out:
        # minibatch mode: report the full-data loss and gradient at the final x
        f, g = obj.fg(out["x"], *obj.args)
        out["fun"], out["jac"] = f, g
        out["nfev"] = out.get("nfev", 0) + 1
        out["njev"] = out.get("njev", 0) + 1
    if obj.compiled:
        # the loops count their evaluations
        nfev, njev = int(out["nfev"]), int(out["njev"])
        if validated and not out.get("used_first", False):
            nfev, njev = nfev + 1, njev + 1
    else:
        # the wrappers counted the calls the user's functions received
        nfev, njev = counter["fun"], counter["jac"]
    res = _make_result(out["x"], out["fun"], out["jac"], out["status"], out["nit"], nfev, njev)
    if "nhev" in out:
        res["nhev"] = int(out["nhev"])
    if "allvecs" in out:
        res["allvecs"] = out["allvecs"]
    if "hess_inv" in out:
        res["hess_inv"] = out["hess_inv"]
    if obj.disp:
        print(res.message)
        print(f"         Current function value: {res.fun:.6g}")
        print(f"         Iterations: {res.nit}")
        print(f"         Function evaluations: {res.nfev}")
        print(f"         Gradient evaluations: {res.njev}")
    return res


# --------------------------------------------------------------------------
# Repeated calls: a validated call kept to run again
# --------------------------------------------------------------------------
#: validated calls by :func:`_plan_key` (bounded: a plan holds the user's
#: functions and their compiled glue)
_PLANS = BoundedCache(GLUE_CACHE_SIZE)


def _plan_key(fun, x0, args, method, jac, tol, constraints, options, bounds):
    """What makes a call repeat a validated one, or None (never cached).

    Everything validation looked at: the functions, method, ``tol`` and the
    options (by value and type: ``maxiter=True`` is not ``maxiter=1``), the
    shape and dtype of ``x0`` and the types of ``args`` (numba types arrays by
    dtype and dimension; a shape in ``args`` may change what ``fun`` returns).
    ``x0``'s values are checked by the plan itself.  ``bounds`` take part as
    a sequence of pairs (by value: the pairs must be hashable, tuples);
    a :class:`scipy.optimize.Bounds` is validated every time.
    """
    if options is None:
        opts = ()
    elif type(options) is dict:
        opts = (*options.items(), *map(type, options.values()))
    else:
        return None
    if args:
        sig = tuple([(type(a), getattr(a, "dtype", None), getattr(a, "shape", None))
                     for a in args])  # fmt: skip
    else:
        sig = ()
    if type(constraints) is not tuple or constraints:
        return None
    if bounds is not None:
        if type(bounds) not in (list, tuple):
            return None
        bounds = tuple(bounds)
    # (hashed by the lookup: an unhashable option value is a TypeError there)
    return (fun, jac, method, tol, type(tol), x0.shape, x0.dtype, sig, opts, bounds)


class _Plan:
    """A validated :func:`minimize` call, kept to run again with another ``x0``/``args``.

    ``minimize`` in a loop (many small fits, a fit per pixel) calls with the
    same ``@njit`` functions, method and options each time; validating them
    again costs more than a short compiled run (issue 11: 17 us before the
    first iteration).  A plan holds what validation produced (the method's
    options, the compiled glue around the user's functions) and only copies
    ``x0`` and runs.  The run is the same runner on the same Objective
    fields, so the iterates are the validated call's.  A first-order method
    runs its lean runner (``Method.plan_runner``), whose loop evaluates ``x0``
    itself: its ``nfev`` leaves out the type-checking call at ``x0`` that a
    first call makes.  The other methods evaluate ``x0`` as a first call does,
    and count the same calls.
    """

    __slots__ = ("run", "method_opts", "fields", "dtype", "lean", "user")

    def __init__(self, entry, method_opts, obj, fun, jac):
        self.run = entry.run
        self.method_opts = method_opts
        # the method's lean runner for such runs, if it has one
        self.lean = entry.plan_runner(method_opts, obj) if entry.plan_runner else None
        # the validated Objective's fields but the per-call ones
        self.fields = {k: v for k, v in vars(obj).items() if k not in ("x0", "args", "first")}
        self.dtype = obj.x0.dtype
        self.user = (fun, jac)  # the user's own @njit functions

    def __call__(self, x0, args):
        x = x0.astype(self.dtype)  # a private copy, as as_x0 makes
        lb = self.fields["lb"]
        if lb is not None:
            np.clip(x, lb, self.fields["ub"], out=x)  # as as_bounds does (NaN stays NaN)
        if self.lean is not None:
            out = self.lean(x, args)
            # no evaluation: x0 is not finite (the slow path says which element)
            return _make_result(*out) if out[5] else None
        # finite only if every element is (or on overflow: the slow path
        # then checks properly and says which element is not finite)
        if not math.isfinite(x.dot(x)):
            return None
        # the validated fields as they are (Objective.__init__ would check
        # and derive them again: a third of the cost of a short run)
        obj = object.__new__(Objective)
        obj.__dict__.update(self.fields)
        obj.x0, obj.args = x, args
        # x0's values as a first call gets them (the user's functions, which
        # are compiled for these types; the glue may exist only inside a loop
        # loaded from numba's cache, and calling it from Python would compile
        # it): the runner reuses them, and the counts are the first call's
        obj.first = first_values(*self.user, x, args)
        return _result(self.run(obj, self.method_opts), obj, None, validated=True)


class ScipyMethod:
    """A fastopt method as a callable for ``scipy.optimize.minimize(method=...)``.

    A class rather than a closure so that it pickles and deep-copies (a
    scipy call inside a multiprocessing pool or a saved pipeline).
    """

    def __init__(self, method):
        self.method = get_method(method).name
        self.__name__ = f"fastopt_{self.method}"

    def __call__(self, fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                 constraints=(), callback=None, **options):  # fmt: skip
        # scipy hands over the caller's own x0 (minimize copies it) and the
        # callback unwrapped (minimize adapts both forms); it passes its
        # `tol` argument to a custom method as options["tol"]
        tol = options.pop("tol", None)
        return minimize(fun, x0, args=args, method=self.method, jac=jac, hess=hess, hessp=hessp,
                        bounds=bounds, constraints=constraints, tol=tol, callback=callback,
                        options=options)  # fmt: skip

    def __reduce__(self):
        return (ScipyMethod, (self.method,))

    def __repr__(self):
        return f"fastopt.as_scipy_method({self.method!r})"


def as_scipy_method(method):
    """A callable for ``scipy.optimize.minimize(fun, x0, method=...)``.

    >>> import numpy as np, scipy.optimize, fastopt
    >>> res = scipy.optimize.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
    ...     method=fastopt.as_scipy_method("adam"),
    ...     options={"learning_rate": 0.1, "maxiter": 500})
    >>> bool(res.fun < 1e-8)
    True
    """
    return ScipyMethod(method)
