"""Run a first-order rule on an :class:`~fastopt._objective.Objective`.

Picks the compiled or the Python loop, runs it in chunks (a chunk of one
step when a callback or ``return_all`` needs Python after every update) and
assembles what :func:`fastopt.minimize` turns into an ``OptimizeResult``.

A minibatch run ends with the full-data ``fun`` and ``jac`` at its last
iterate; if that value is non-finite or far above the start's
(:func:`minibatch_diverged`), the run diverged: status DIVERGED
(``success=False``) and ``x`` is ``x0``, the better of the two full-data
points it knows.

In the compiled driver a callback is still called after every update, with
the same arguments as in the Python driver: the loop returns to Python for
it, which costs about a microsecond per step but keeps the semantics
(including ``StopIteration``) identical.  Without a callback the whole run is
a single nopython call.
"""

import math

import numpy as np

from .._batching import check_batch_args, seed_state
from .._status import CALLBACK, DIVERGED, EPOCHS, MAXITER
from ..kernels import cpu
from . import first_order as fo
from ._checks import accept, projected_inf_norm

#: updates per chunk when nothing needs Python between steps (bounds the
#: size of a precomputed learning-rate table)
CHUNK = 1 << 16

#: ``lb``/``ub`` of an unbounded run, by dtype (length 0: never read)
_NO_BOUNDS = {np.dtype(d): (np.zeros(0, d),) * 2 for d in (np.float32, np.float64)}

#: a minibatch run that ends with its full-data f above f(x0) by more than
#: this factor times max(|f(x0)|, 1) (or non-finite) has diverged (issue 11)
MINIBATCH_DIVERGENCE = 1e3


def minibatch_diverged(f_end, f0):
    """Whether a minibatch run that ended at full-data ``f_end`` from ``f0`` diverged.

    A minibatch run sees only batch losses, so it cannot stop on divergence
    as a line search would; at the end the full-data value decides:
    non-finite, or more than ``MINIBATCH_DIVERGENCE * max(|f0|, 1)`` above
    the start (the scale floor 1 as AdaHessian's guard).  Noise of a run
    that converged, or started at the optimum, stays orders of magnitude
    below that; a learning rate that makes the iterates grow does not.
    """
    return not math.isfinite(f_end) or f_end - f0 > MINIBATCH_DIVERGENCE * max(abs(f0), 1.0)


def deterministic_run(det, opt, x, args, lb, ub, maxiter, gtol, first=None, after_step=None):
    """Full-gradient steps from ``x`` until a stop test: ``(status, t, f, nfev, x_good, g_good)``.

    ``det`` is ``(loop, first_args)``, the deterministic loop (compiled or
    Python, from :func:`fastopt.drivers.first_order.compiled_loops`); ``lb``
    None means unbounded.  ``first``: ``(f, g)`` known at ``x``, else the loop
    evaluates there itself.  ``after_step(t, f, g)``: called after every
    update (a callback, ``return_all``), returning a status; without it the
    loop runs in chunks of :data:`CHUNK` updates with no Python in between.
    """
    loop, loop_first = det
    S = opt.new_slots(x)  # (x is validated: not opt.init's checks)
    c = np.zeros(cpu.N_COEFFS, dtype=x.dtype)
    x_good = x.copy()
    g_good = np.zeros(x.shape[0], x.dtype)
    bounded = lb is not None
    if not bounded:  # the loops never read lb/ub then: an empty array costs nothing
        lb, ub = _NO_BOUNDS[x.dtype]
    if first is not None:
        f, g = first
        nfev = 1
        bad, gnorm = accept(x, f, g, x_good, g_good)
        if bounded and bad == 0:
            gnorm = projected_inf_norm(x, g_good, lb, ub)
        status = bad if bad != 0 else fo.RUNNING
    else:  # the loop evaluates at x first (nfev == 0)
        f, gnorm, nfev, status = np.nan, np.inf, 0, fo.RUNNING
    t = 0
    f_prev = np.nan
    nsteps = CHUNK if after_step is None else 1
    while status == fo.RUNNING:
        lrs = fo.lr_table(opt, t, min(nsteps, maxiter - t))
        status, t, gnorm, f, f_prev, nfev = loop(
            *loop_first, x, args, opt.kid, S, opt.h, c, lrs, t, x_good, g_good, lb, ub,
            bounded, opt.zero_steps, t, nsteps, maxiter, gtol, gnorm, f, f_prev, nfev,
        )  # fmt: skip
        if status == fo.RUNNING and after_step is not None:
            status = after_step(t, f, g_good)
    return status, t, f, nfev, x_good, g_good


def plan_runner(opt, obj):
    """``run(x, args) -> (x, f, g, status, nit, nfev, njev)`` for repeated runs like ``obj``.

    What :func:`run_first_order` does for a compiled, full-batch run with no
    bounds, callback or ``return_all``, with nothing else: a repeated
    :func:`fastopt.minimize` call (``fastopt._minimize._Plan``) runs it.
    None for any other kind of run.
    """
    simple = (obj.compiled and obj.batch_size is None and obj.lb is None
              and obj.callback is None and not obj.return_all)  # fmt: skip
    if not simple:
        return None
    det = fo.compiled_loops(opt.kid, obj.fg)[0]
    maxiter, gtol = obj.maxiter, obj.gtol

    def run(x, args):
        status, t, f, nfev, x_good, g_good = deterministic_run(det, opt, x, args, None, None,
                                                               maxiter, gtol)  # fmt: skip
        return x_good, f, g_good, status, t, nfev, nfev

    return run


def run_first_order(obj, opt):
    """Minimize ``obj`` with the :class:`~fastopt.optim.Optimizer` ``opt``."""
    x = obj.x0
    bounded = obj.lb is not None
    lb, ub = (obj.lb, obj.ub) if bounded else _NO_BOUNDS[x.dtype]
    per_step = obj.callback is not None or obj.return_all
    allvecs = [x.copy()] if obj.return_all else None
    if obj.compiled:
        (det, det_first), (mb, mb_first) = fo.compiled_loops(opt.kid, obj.fg)
    else:
        det, det_first = fo.deterministic_loop, (obj.fg,)
        mb, mb_first = fo.minibatch_loop, (obj.fg,)

    def after_step(t, f, g):  # (only called with per_step)
        if allvecs is not None:
            allvecs.append(x.copy())
        if obj.callback is not None:
            try:
                obj.callback(x, f, g, t)
            except StopIteration:
                return CALLBACK
        return fo.RUNNING

    if obj.batch_size is None:
        status, t, f, nfev, x_good, g_good = deterministic_run(
            (det, det_first), opt, x, obj.args, obj.lb, obj.ub, obj.maxiter, obj.gtol,
            obj.first, after_step if per_step else None,
        )  # fmt: skip
        out = {"x": x_good, "fun": float(f), "jac": g_good, "status": status, "nit": t,
               "nfev": nfev, "njev": nfev, "used_first": obj.first is not None}  # fmt: skip
    else:
        S = opt.new_slots(x)  # (x0 is validated: not opt.init's checks)
        c = np.zeros(cpu.N_COEFFS, dtype=x.dtype)
        x_good = x.copy()
        x_start = x.copy()
        if obj.first is not None:
            # minimize evaluated the full data at x0 (and counts that call)
            f_start, g_start = obj.first
        else:
            f_start, g_start = obj.fg(x_start, *obj.args)
        n_samples = check_batch_args(obj.args)
        perm = np.arange(n_samples)
        rng = seed_state(obj.seed)
        t, epoch, b, nfev = 0, 0, 0, 0
        f_prev = np.nan
        status = fo.RUNNING
        maxiter = obj.maxiter
        while status == fo.RUNNING:
            nsteps = 1 if per_step else CHUNK
            lrs = fo.lr_table(opt, t, nsteps)
            status, t, epoch, b, rng, nfev, f_prev = mb(
                *mb_first, x, obj.args, opt.kid, S, opt.h, c, lrs, t, x_good, lb, ub, bounded,
                t, nsteps, maxiter, perm, rng, obj.shuffle, obj.batch_size, epoch, b,
                obj.epochs, nfev, f_prev,
            )  # fmt: skip
            rng = np.uint64(rng)  # nopython code returns it as a Python int
            if status == fo.RUNNING and per_step:
                status = after_step(t, f_prev, None)
        if obj.first is None:
            nfev += 1
        out = {"x": x, "status": status, "nit": t, "nfev": nfev, "njev": nfev}
        if status in (EPOCHS, MAXITER):
            # fun and jac of the result are on the full data; a run that ended
            # far above its start diverged: x0 is then the better iterate.
            f_end, g_end = obj.fg(x, *obj.args)
            out["nfev"] = out["njev"] = nfev + 1
            if minibatch_diverged(float(f_end), float(f_start)):
                out["status"] = DIVERGED
                out["x"], f_end, g_end = x_start, f_start, g_start
            out["fun"], out["jac"] = f_end, g_end
    if allvecs is not None:
        out["allvecs"] = allvecs
    return out
