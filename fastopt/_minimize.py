"""``fastopt.minimize``: scipy's contract, fastopt's methods.

Data flow: validate (x0 to a private 1-D float copy, args to a tuple, options
to the method's NamedTuple, unknown options warn), look the method up in the
:data:`METHODS` registry, adapt ``fun``/``jac``/``callback`` to one
:class:`~fastopt._objective.Objective`, let the method's runner loop, and
build the ``OptimizeResult`` from the status table in :mod:`fastopt._status`.
"""

import inspect
import warnings

import numpy as np

from . import _device, _status
from ._methods import COMMON, FIRST_ORDER_ONLY, get_method
from ._objective import Objective, grad_from_fg
from ._validation import as_bounds, as_x0, check_grad, check_value, is_jitted

_FG_CACHE = {}


def _jit_fg(fun, jac):
    """An ``@njit`` ``fg`` from an ``@njit`` ``fun`` and ``jac`` (cached per pair)."""
    key = (fun, jac)
    if key not in _FG_CACHE:
        import numba

        @numba.njit
        def fg(x, *args):
            return fun(x, *args), jac(x, *args)

        fg.fastopt_glue = ("fg", fun, jac)  # see _jit.cache_identity
        _FG_CACHE[key] = fg
    return _FG_CACHE[key]


def _jit_f_only(fun):
    key = (fun, True)
    if key not in _FG_CACHE:
        import numba

        @numba.njit
        def f_only(x, *args):
            return fun(x, *args)[0]

        f_only.fastopt_glue = ("f_only", fun)
        _FG_CACHE[key] = f_only
    return _FG_CACHE[key]


def _python_fg(fun, jac, x, args, counter):
    """Python ``fun``/``fg``/``grad`` for the scipy ``jac`` conventions, plus a first-call check.

    Returns ``(fun_only, fg, grad, grad_calls_fun)``: ``grad`` is the
    gradient alone (the user's ``jac``, ``fun(x)[1]`` with ``jac=True``, or
    the finite-difference gradient), and ``grad_calls_fun`` says whether a
    ``grad`` call also evaluates ``fun`` uncounted (``jac=True``).
    """
    dtype = x.dtype
    grad_calls_fun = False
    if callable(jac):

        def fg(x, *a):
            return fun(x, *a), jac(x, *a)

        def fun_only(x, *a):
            return fun(x, *a)

        grad = jac
    elif jac is True:
        fg = fun

        def fun_only(x, *a):
            return fun(x, *a)[0]

        grad = None
        grad_calls_fun = True
    elif jac in (None, False, "2-point", "3-point", "cs"):
        from scipy.optimize._numdiff import approx_derivative

        scheme = "2-point" if jac in (None, False) else jac

        def fun_only(x, *a):
            return fun(x, *a)

        def fd_grad(x, a, f0):
            calls = [0]

            def f1(z):
                calls[0] += 1
                return fun(z, *a)

            # difference in x's own dtype: scipy sizes the step for it (a
            # float64-sized step vanishes when rounded to float32)
            g = approx_derivative(f1, x, method=scheme, f0=f0)
            # every call of fun made here counts (f0 too, when scipy made it)
            counter["nfev"] += calls[0]
            return g.astype(dtype)

        def fg(x, *a):
            f0 = check_value(fun(x, *a), "fun(x)")
            return f0, fd_grad(x, a, f0 if scheme == "2-point" else None)

        def grad(x, *a):
            return fd_grad(x, a, None)
    else:
        raise ValueError(
            f"Invalid jac: {jac!r}; expected a callable, True, '2-point', '3-point' or None"
        )

    # Call once to check the return types; if the user's values already have
    # the right type, use the raw callables (no wrapper per call).  The call
    # counts as an evaluation: drivers may reuse it (Objective.first).
    f0, g0 = fg(x.copy(), *args)
    check_value(f0, "fun(x0)")
    check_grad(g0, x, "jac(x0)")
    counter["first"] = (f0, g0)
    raw_ok = (
        isinstance(f0, float | np.floating)
        and isinstance(g0, np.ndarray)
        and g0.dtype == dtype
        and g0.flags.c_contiguous
    )
    if raw_ok:
        if grad is None:
            grad = grad_from_fg(fg, False)
        return fun_only, fg, grad, grad_calls_fun

    def fg_checked(x, *a):
        f, g = fg(x, *a)
        return check_value(f, "fun(x)"), np.ascontiguousarray(check_grad(g, x, "jac(x)"), dtype)

    if grad is None:
        return fun_only, fg_checked, grad_from_fg(fg_checked, False), grad_calls_fun
    grad_raw = grad

    def grad_checked(x, *a):
        return np.ascontiguousarray(check_grad(grad_raw(x, *a), x, "jac(x)"), dtype)

    return fun_only, fg_checked, grad_checked, grad_calls_fun


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


def minimize(fun, x0, args=(), method="adam", jac=None, hess=None, hessp=None,
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
    x0 : ndarray, shape (n,)
        Start; float32 stays float32 and float64 stays float64.  Never modified.
    args : tuple, optional
        Extra arguments passed to ``fun``, ``jac`` and ``hessp``.
    method : str, optional
        One of :data:`fastopt.METHODS` (default ``"adam"``).
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
        Sets ``gtol`` unless ``options`` gives it.
    callback : callable, optional
        ``callback(xk)`` or ``callback(intermediate_result: OptimizeResult)``,
        after every update; raising ``StopIteration`` ends the run (status 99).
    options : dict, optional
        The method's hyperparameters (e.g. ``learning_rate``, ``b1``), plus:
        ``maxiter`` (update steps; default 1000), ``gtol`` (inf-norm of the
        gradient; default 1e-5; deterministic mode), ``disp``, ``return_all``,
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
    if (type(x0) is not np.ndarray and _device.is_device_array(x0)) or (
        (options or {}).get("device") not in (None, "cpu")
    ):
        from .drivers.cuda_loop import minimize_device

        return minimize_device(fun, x0, args, method, jac, hess, hessp, bounds, constraints,
                               tol, callback, options)  # fmt: skip
    # scipy.optimize costs ~0.3 s to import: not at `import fastopt`
    from scipy.optimize import OptimizeResult, OptimizeWarning

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
    opts = dict(options or {})
    if tol is not None:
        opts.setdefault("gtol", tol)
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
    maxiter = entry.default_maxiter if maxiter is None else int(maxiter)
    if maxiter < 0:
        raise ValueError(f"Invalid maxiter value: {maxiter}")
    gtol = float(common["gtol"])
    if not gtol >= 0:
        raise ValueError(f"Invalid gtol value: {gtol}")
    batch_size = common["batch_size"]
    epochs = common["epochs"]
    if batch_size is not None:
        entry.check_minibatch()
        if not (isinstance(batch_size, int | np.integer) and batch_size >= 1):
            raise ValueError(f"Invalid batch_size value: {batch_size!r} (need an integer >= 1)")
        epochs = 1 if epochs is None else epochs
        if not (isinstance(epochs, int | np.integer) and epochs >= 1):
            raise ValueError(f"Invalid epochs value: {epochs!r} (need an integer >= 1)")
        if common["maxiter"] is None:
            maxiter = np.iinfo(np.int64).max
        from ._batching import check_batch_args

        check_batch_args(args)
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
    counter = {"nfev": 0}
    compiled = (
        is_jitted(fun) and (jac is True or is_jitted(jac)) and (hessp is None or is_jitted(hessp))
    )
    if compiled:
        if jac is True:
            # the gradient alone still evaluates fun: counted as both
            fg, fun_only, grad = fun, _jit_f_only(fun), grad_from_fg(fun, True)
            grad_calls_fun = True
        else:
            fg, fun_only, grad, grad_calls_fun = _jit_fg(fun, jac), fun, jac, False
        f0, g0 = fg(x.copy(), *args)
        check_value(f0, "fun(x0)")
        check_grad(g0, x, "jac(x0)")
        counter["first"] = (f0, g0)
    else:
        fun_only, fg, grad, grad_calls_fun = _python_fg(fun, jac, x, args, counter)

    obj = Objective(
        x0=x, fun=fun_only, fg=fg, grad=grad, grad_calls_fun=grad_calls_fun,
        hessp=hessp, args=args, compiled=compiled, lb=lb, ub=ub,
        maxiter=maxiter, gtol=gtol, batch_size=batch_size, epochs=epochs,
        shuffle=bool(common["shuffle"]), seed=common["seed"],
        callback=_adapt_callback(callback, entry.name),
        return_all=bool(common["return_all"]), disp=bool(common["disp"]),
        first=counter["first"],
    )  # fmt: skip
    out = entry.run(obj, method_opts)
    if not out.get("used_first", False):
        # the validation call was an extra evaluation of fun and jac
        counter["nfev"] += 1
        out["njev"] = out.get("njev", 0) + 1

    status = out["status"]
    if "fun" not in out or "jac" not in out:
        # minibatch mode: report the full-data loss and gradient at the final x
        f, g = fg(out["x"], *args)
        out["fun"], out["jac"] = f, g
        out["nfev"] = out.get("nfev", 0) + 1
        out["njev"] = out.get("njev", 0) + 1
    res = OptimizeResult(
        x=out["x"], fun=float(out["fun"]), jac=np.asarray(out["jac"]), nit=int(out["nit"]),
        nfev=int(out["nfev"]) + counter["nfev"] + obj.extra_nfev, njev=int(out["njev"]),
        status=int(status), success=status in _status.SUCCESSFUL,
        message=_status.MESSAGES[status],
    )  # fmt: skip
    if "nhev" in out:
        res["nhev"] = int(out["nhev"])
    if "allvecs" in out:
        res["allvecs"] = out["allvecs"]
    if obj.disp:
        print(res.message)
        print(f"         Current function value: {res.fun:.6g}")
        print(f"         Iterations: {res.nit}")
        print(f"         Function evaluations: {res.nfev}")
        print(f"         Gradient evaluations: {res.njev}")
    return res


def as_scipy_method(method):
    """A callable for ``scipy.optimize.minimize(fun, x0, method=...)``.

    >>> import numpy as np, scipy.optimize, fastopt
    >>> res = scipy.optimize.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
    ...     method=fastopt.as_scipy_method("adam"),
    ...     options={"learning_rate": 0.1, "maxiter": 500})
    >>> bool(res.fun < 1e-8)
    True
    """
    entry = get_method(method)

    def _method(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                constraints=(), callback=None, **options):  # fmt: skip
        # scipy hands over the caller's own x0 (minimize copies it) and the
        # callback unwrapped (minimize adapts both forms).
        # scipy passes its `tol` argument to a custom method as options["tol"]
        tol = options.pop("tol", None)
        return minimize(fun, x0, args=args, method=entry.name, jac=jac, hess=hess, hessp=hessp,
                        bounds=bounds, constraints=constraints, tol=tol, callback=callback,
                        options=options)  # fmt: skip

    _method.__name__ = f"fastopt_{entry.name}"
    return _method
