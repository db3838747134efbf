"""The first-order loops, written once and run two ways.

``deterministic_loop`` and ``minibatch_loop`` are plain Python over NumPy
arrays, calling only cached kernels (``cpu.step``, the checks) and the
user's ``fg``.  With Python callables they run as Python (the *Python
driver*); when ``fg`` is a numba dispatcher the same functions are compiled
with ``@njit`` (the *compiled driver*) and the loop runs with no Python per
step.  Sharing the source is what makes the two drivers give the same
iterates.

Both loops run at most ``nsteps`` updates and return their position, so the
caller can run them in chunks: all at once without a callback, one step at a
time with a callback (or ``return_all``), with Python in between.  The
learning rates of a chunk come precomputed in ``lrs`` (one entry: constant).
"""

import types

import numpy as np

from .. import _jit
from .._batching import shuffle, take_args
from .._status import EPOCHS, MAXITER, SUCCESS
from ..kernels import cpu
from ..rules import KERNEL_TABLE
from ._checks import accept, copy_into, finite_fg, finite_x, project

# The loops call `step`: the cached switch kernel when they run as Python;
# a per-rule inlined step when compiled (see `compiled_loops`).
step = cpu.step

RUNNING = -1


def deterministic_loop(
    fg, x, args, kid, S, h, c, lrs, t0, x_good, g_good, lb, ub, bounded,
    t, nsteps, maxiter, gtol, gnorm, f, f_prev, nfev,
):  # fmt: skip
    """Full-gradient steps from ``x`` (where ``f``, ``g_good`` are known).

    Returns ``(status, t, gnorm, f, f_prev, nfev)``; ``status`` is
    ``RUNNING`` when ``nsteps`` were taken without meeting a stop test.
    """
    status = RUNNING
    for _ in range(nsteps):
        if gnorm <= gtol:
            status = SUCCESS
            break
        if t >= maxiter:
            status = MAXITER
            break
        lr = lrs[t - t0] if lrs.shape[0] > 1 else lrs[0]
        aux = 1.0 if f > f_prev else 0.0
        t += 1
        step(kid, x, g_good, S, h, t, lr, aux, c)
        if bounded:
            project(x, lb, ub)
        f_new, g = fg(x, *args)
        nfev += 1
        bad, gn = accept(x, f_new, g, x_good, g_good)
        if bad != 0:
            status = bad
            t -= 1  # the rejected step does not count: x is back at x_good
            break
        gnorm = gn
        f_prev = f
        f = f_new
    return status, t, gnorm, f, f_prev, nfev


def minibatch_loop(
    fg, x, args, kid, S, h, c, lrs, t0, x_good, lb, ub, bounded,
    t, nsteps, maxiter, perm, rng, do_shuffle, batch_size, epoch, b, epochs, nfev, f_prev,
):  # fmt: skip
    """One update per minibatch, reshuffling ``perm`` at each epoch start.

    Returns ``(status, t, epoch, b, rng, nfev, f_prev)``.
    """
    n_samples = perm.shape[0]
    n_batches = (n_samples + batch_size - 1) // batch_size
    status = RUNNING
    for _ in range(nsteps):
        if b == n_batches:
            epoch += 1
            b = 0
        if epoch >= epochs:
            status = EPOCHS
            break
        if t >= maxiter:
            status = MAXITER
            break
        if b == 0 and do_shuffle:
            rng = np.uint64(shuffle(perm, rng))  # stays uint64 when run as Python
        idx = perm[b * batch_size : min((b + 1) * batch_size, n_samples)]
        f, g = fg(x, *take_args(args, idx))
        nfev += 1
        bad = finite_fg(f, g)
        if bad != 0:
            # x's values are not finite: go back to the previous iterate
            copy_into(x, x_good)
            status = bad
            break
        copy_into(x_good, x)
        lr = lrs[t - t0] if lrs.shape[0] > 1 else lrs[0]
        aux = 1.0 if f > f_prev else 0.0
        f_prev = f
        t += 1
        step(kid, x, g, S, h, t, lr, aux, c)
        if bounded:
            project(x, lb, ub)
        bad = finite_x(x)
        if bad != 0:
            copy_into(x, x_good)
            status = bad
            t -= 1
            break
        b += 1
    return status, t, epoch, b, rng, nfev, f_prev


def _rebind(fn, **names):
    """``fn`` with some of its global names bound to other objects (same code)."""
    g = dict(fn.__globals__)
    g.update(names)
    return types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)


def _inline_step(kern):
    # as in kernels/cpu.py: an element function with scalar helpers is left to
    # LLVM to inline, else its loop does not vectorise
    e = (_jit.scalar if kern.helpers else _jit.inline)(kern.bind(_jit.scalar))
    co = _jit.inline(kern.coeffs)

    def step_one_rule(kid, x, g, S, h, t, lr, aux, c):
        co(h, t, lr, aux, c)
        for i in range(x.shape[0]):
            e(i, x, g, S, c)

    return _jit.inline(step_one_rule)


_COMPILED = {}


def compiled_loops(kid):
    """``(deterministic_loop, minibatch_loop)`` compiled for kernel ``kid``.

    The compiled driver cannot be cached anyway (it calls the user's
    function), so it is specialised per rule: the rule's element and
    coefficient functions and the checks are inlined into the loop.  A call
    to a separate kernel costs ~70 ns of atomic reference counting on its
    array arguments, more than a 2-D Adam step itself.
    """
    if kid not in _COMPILED:
        _, kern = KERNEL_TABLE[kid]
        names = {
            "step": _inline_step(kern),
            "accept": _jit.inline(accept.py_func),
            "project": _jit.inline(project.py_func),
            "finite_fg": _jit.inline(finite_fg.py_func),
            "finite_x": _jit.inline(finite_x.py_func),
            "copy_into": _jit.inline(copy_into.py_func),
        }
        _COMPILED[kid] = (
            _jit.user_loop(_rebind(deterministic_loop, **names)),
            _jit.user_loop(_rebind(minibatch_loop, **names)),
        )
    return _COMPILED[kid]


def lr_table(opt, t, nsteps):
    """The learning rates of updates ``t .. t+nsteps-1`` (one entry if constant)."""
    if opt._lr_of is None:
        return np.array([opt.base_lr])
    return np.array([opt._lr_of(k, opt.base_lr) for k in range(t, t + max(nsteps, 1))])
