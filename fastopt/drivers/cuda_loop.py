"""The device driver: a first-order loop with ``x`` and the state on the GPU.

:func:`fastopt.minimize` routes here when ``options["device"] == "cuda"`` or
``x0`` is a device array (numba, or anything with ``__cuda_array_interface__``:
CuPy, torch).  The loop is :func:`fastopt.drivers.first_order.deterministic_loop`
step for step (same stop tests, same order of checks, same NaN handling), with
the arrays kept on the device:

- ``fun``/``jac`` are called with ``x`` as a device array of the caller's
  library (a numba device array when ``x0`` is NumPy or numba); they may
  return device arrays (used in place; another dtype is cast on the device)
  or host arrays (uploaded: one copy per step, which is the objective's cost);
- the step is the rule's ``@cuda.jit`` kernel, with the coefficients passed by
  value (:mod:`fastopt.kernels.cuda`);
- the finiteness checks and the gradient's inf-norm are one small device
  reduction; three numbers come back per step (and ``f`` when ``fun`` returns
  it on the device);
- the last finite iterate and its gradient are kept by device-to-device
  copies, so a NaN or inf ends the run with ``x`` the last finite iterate,
  as in the CPU drivers.

``res.x`` (and ``res.jac``, callback arguments and ``allvecs``) come back
where ``x0`` started: numba device array in, numba device array out; CuPy in,
CuPy out; torch in, torch out (zero copy, through ``__cuda_array_interface__``;
other libraries get numba device arrays); NumPy in (with ``device="cuda"``),
NumPy out.  ``host_result=True`` returns NumPy arrays.

Not supported on the device (``ValueError``): minibatch mode (``batch_size``),
finite-difference gradients, ``@njit`` objectives, second-order methods.
"""

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from .. import _device, _status
from .._methods import COMMON, get_method
from .._status import CALLBACK, MAXITER, NONFINITE_F, NONFINITE_G, NONFINITE_X, SUCCESS
from .._validation import as_bounds, as_x0, is_jitted
from ..rules import RULES
from .first_order import RUNNING


def _exporter(x0, host_result):
    """``(to_user, to_result)``: numba device array -> what the caller works with.

    ``to_user`` gives ``fun``/``jac``/callbacks zero-copy views in the caller's
    library; ``to_result`` is for ``res.x``/``res.jac`` (and callback copies).
    """

    def ident(d):
        return d

    def host(d):
        return d.copy_to_host()

    mod = type(x0).__module__.split(".")[0]
    if isinstance(x0, np.ndarray):
        return ident, host
    if mod == "cupy":
        import cupy

        to_user = cupy.asarray
    elif mod == "torch":
        import torch

        device = x0.device

        def to_user(d):
            return torch.as_tensor(d, device=device)
    else:  # numba device arrays, and other libraries: numba device arrays
        to_user = ident
    return to_user, (host if host_result else to_user)


def _fg_of(fun, jac):
    if callable(jac):

        def fg(x, *a):
            return fun(x, *a), jac(x, *a)

        return fg
    if jac is True:
        return fun
    raise ValueError(
        f"device='cuda' needs an analytic gradient (jac callable or jac=True), got jac={jac!r}: "
        "finite differences would copy x to the host at every evaluation"
    )


def _value(f, where):
    """The objective value as a Python float (one device-to-host copy if on the device)."""
    if _device.is_numba_device_array(f):
        f = f.copy_to_host()
    try:
        return float(f.item() if hasattr(f, "item") else f)
    except (TypeError, ValueError, RuntimeError):
        shape = getattr(f, "shape", None)
        raise ValueError(
            f"fun must return a scalar; {where} returned {type(f).__name__}"
            + (f" of shape {tuple(shape)}" if shape is not None else "")
        ) from None


def minimize_device(
    fun, x0, args=(), method="adam", jac=None, hess=None, hessp=None, bounds=None,
    constraints=(), tol=None, callback=None, options=None,
):  # fmt: skip
    """:func:`fastopt.minimize` with ``x`` and the optimizer state on a CUDA device."""
    opts = dict(options or {})
    device = opts.pop("device", None)
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"Invalid device value: {device!r}; expected 'cpu' or 'cuda'")
    if device == "cpu":
        raise ValueError(
            "device='cpu' but x0 is a device array: pass a host copy (e.g. x0.copy_to_host(), "
            "cupy.asnumpy(x0), x0.cpu().numpy())"
        )
    host_result = bool(opts.pop("host_result", False))
    entry = get_method(method)
    if entry.kind != "first-order":
        raise ValueError(f"method {entry.name!r} does not run on the device; device='cuda' "
                         f"supports the first-order methods: {', '.join(RULES)}")  # fmt: skip
    if not isinstance(args, tuple):
        args = (args,)
    if constraints not in ((), None, []):
        raise ValueError(f"method {entry.name!r} does not handle constraints; use bounds")
    if is_jitted(fun) or is_jitted(jac):
        raise ValueError("device='cuda': numba @njit objectives run on the CPU; give fun/jac "
                         "that take device arrays (CuPy, torch, @cuda.jit kernels)")  # fmt: skip
    cuda = _device.require_cuda()
    from ..kernels import cuda as kc

    if tol is not None:
        opts.setdefault("gtol", tol)
    common = {k: opts.pop(k, v) for k, v in COMMON.items() if k not in ("device", "host_result")}
    if common["batch_size"] is not None or common["epochs"] is not None:
        raise ValueError("minibatch mode (batch_size, epochs) is not supported with "
                         "device='cuda' yet; slice your data on the device in fun/jac")  # fmt: skip
    opt, unknown = entry.options(opts)
    if unknown:
        warnings.warn(f"Unknown solver options for {entry.name!r}: {', '.join(unknown)}",
                      OptimizeWarning, stacklevel=3)  # fmt: skip
    if hess is not None or hessp is not None:
        warnings.warn(
            f"Method {entry.name} does not use Hessian information "
            f"({'hess' if hess is not None else 'hessp'}).",
            RuntimeWarning,
            stacklevel=3,
        )
    maxiter = entry.default_maxiter if common["maxiter"] is None else int(common["maxiter"])
    if maxiter < 0:
        raise ValueError(f"Invalid maxiter value: {maxiter}")
    gtol = float(common["gtol"])
    if not gtol >= 0:
        raise ValueError(f"Invalid gtol value: {gtol}")
    fg = _fg_of(fun, jac)

    # x: a private device copy of x0 (x0 is never modified)
    if _device.is_device_array(x0):
        x = kc.copy(kc.check_params(x0))
    else:
        x = cuda.to_device(as_x0(x0))
    to_user, to_result = _exporter(x0, host_result)
    n, dtype = x.shape[0], x.dtype
    checks = kc.Checks(n, dtype)
    if checks(x, x)[0]:
        raise ValueError("x0 must be finite")
    bounded = bounds is not None
    if bounded:
        lb, ub = as_bounds(bounds, np.zeros(n, dtype))
        lb, ub = cuda.to_device(lb), cuda.to_device(ub)
        kc.project(x, lb, ub)
    xu = to_user(x)  # the caller's view of x, updated in place by the steps
    S = kc.init_state(opt, x).slots
    x_good = kc.copy(x)
    g_good = cuda.device_array(n, dtype=dtype)
    g_buf = cuda.device_array(n, dtype=dtype)
    allvecs = [to_result(kc.copy(x))] if common["return_all"] else None
    cb = _adapt_callback(callback, to_result)

    def evaluate(where):
        f, g = fg(xu, *args)
        return _value(f, where), kc.as_grad(g, x, g_buf, where=f"jac: {where}")

    def accept(f, gd):
        bad_x, bad_g, gn = checks(x, gd)
        status = (NONFINITE_X if bad_x else NONFINITE_F if not math.isfinite(f)
                  else NONFINITE_G if bad_g else 0)  # fmt: skip
        if status != 0:
            x.copy_to_device(x_good)
            return status, math.inf
        x_good.copy_to_device(x)
        g_good.copy_to_device(gd)
        return 0, gn

    f, gd = evaluate("fun(x0)")
    nfev = 1
    bad, gnorm = accept(f, gd)
    status = bad if bad != 0 else RUNNING
    t = 0
    f_prev = math.nan
    while status == RUNNING:
        if gnorm <= gtol:
            status = SUCCESS
            break
        if t >= maxiter:
            status = MAXITER
            break
        lr = opt.lr(t)
        aux = 1.0 if f > f_prev else (-1.0 if f < f_prev else 0.0)  # the sign of f's change
        t += 1
        kc.launch_step(opt.kid, opt.h, t, lr, aux, x, g_good, S)
        if bounded:
            kc.project(x, lb, ub)
        f_new, gd = evaluate("fun(x)")
        nfev += 1
        bad, gn = accept(f_new, gd)
        if bad != 0:
            status = bad
            t -= 1  # the rejected step does not count: x is back at x_good
            break
        gnorm = gn
        f_prev = f
        f = f_new
        if allvecs is not None:
            allvecs.append(to_result(kc.copy(x)))
        if cb is not None:
            try:
                cb(x, f, g_good, t)
            except StopIteration:
                status = CALLBACK

    res = OptimizeResult(
        x=to_result(x_good), fun=float(f), jac=to_result(g_good), nit=t, nfev=nfev, njev=nfev,
        status=status, success=status in _status.SUCCESSFUL, message=_status.MESSAGES[status],
    )  # fmt: skip
    if allvecs is not None:
        res["allvecs"] = allvecs
    if common["disp"]:
        print(res.message)
        print(f"         Current function value: {res.fun:.6g}")
        print(f"         Iterations: {res.nit}")
        print(f"         Function evaluations: {res.nfev}")
        print(f"         Gradient evaluations: {res.njev}")
    return res


def _adapt_callback(callback, to_result):
    """Both scipy callback forms -> ``cb(x, f, g, nit)`` with copies in the caller's kind."""
    if callback is None:
        return None
    import inspect

    from ..kernels import cuda as kc

    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        params = set()
    if params == {"intermediate_result"}:

        def cb(x, f, g, nit):
            res = OptimizeResult(x=to_result(kc.copy(x)), fun=f, nit=nit,
                                 jac=to_result(kc.copy(g)))  # fmt: skip
            callback(intermediate_result=res)
    else:

        def cb(x, f, g, nit):
            callback(to_result(kc.copy(x)))

    return cb
