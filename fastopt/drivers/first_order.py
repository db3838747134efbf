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

import ast
import inspect
import textwrap
import types

import numpy as np

from .. import _jit
from .._batching import shuffle, take_args
from .._status import EPOCHS, MAXITER, SUCCESS
from .._user import GLUE_CACHE_SIZE, BoundedCache
from ..kernels import cpu
from ..rules import KERNEL_TABLE
from ._checks import (
    accept,
    copy_into,
    finite_fg,
    finite_x,
    project,
    projected_inf_norm,
    same_point,
)

# The loops call `step`: the cached switch kernel when they run as Python;
# a per-rule inlined step when compiled (see `compiled_loops`).
step = cpu.step

RUNNING = -1


def deterministic_loop(
    fg, x, args, kid, S, h, c, lrs, t0, x_good, g_good, lb, ub, bounded, zero_steps,
    t, nsteps, maxiter, gtol, gnorm, f, f_prev, nfev,
):  # fmt: skip
    """Full-gradient steps from ``x`` (where ``f``, ``g_good`` are known).

    ``zero_steps``: the rule can leave ``x`` exactly where it was (Rprop
    after a sign change in every component); such a step is not evaluated
    again, as scipy's suites require (no point evaluated twice in a row).

    With ``nfev == 0`` nothing is known at ``x`` yet: the loop's first pass
    only evaluates there (``f``, ``gnorm`` are then ignored), in compiled
    code (a repeated ``minimize`` call, whose fixed cost this keeps small),
    through the same call site as every step's evaluation (a second one would
    add a quarter to the loop's compile time); an ``x`` that is not finite
    returns NONFINITE_X with ``nfev`` still 0, evaluating nothing (the
    caller's validation says which element).

    Returns ``(status, t, gnorm, f, f_prev, nfev)``; ``status`` is
    ``RUNNING`` when ``nsteps`` were taken without meeting a stop test.
    """
    status = RUNNING
    passes = nsteps
    if nfev == 0:
        bad = finite_x(x)
        if bad != 0:
            return bad, t, gnorm, f, f_prev, nfev
        passes += 1  # the first pass evaluates x, then nsteps steps
    for _ in range(passes):
        stepped = nfev > 0
        if stepped:
            if gnorm <= gtol:
                status = SUCCESS
                break
            if t >= maxiter:
                status = MAXITER
                break
            lr = lrs[t - t0] if lrs.shape[0] > 1 else lrs[0]
            aux = 1.0 if f > f_prev else (-1.0 if f < f_prev else 0.0)  # the sign of f's change
            t += 1
            step(kid, x, g_good, S, h, t, lr, aux, c)
            if bounded:
                project(x, lb, ub)
            if zero_steps and same_point(x, x_good):
                f_prev = f  # same point: same f and g as the evaluation before
                continue
        f_new, g = fg(x, *args)
        nfev += 1
        bad, gn = accept(x, f_new, g, x_good, g_good)
        if bad != 0:
            status = bad
            if stepped:
                t -= 1  # the rejected step does not count: x is back at x_good
            break
        gnorm = gn
        if bounded:
            gnorm = projected_inf_norm(x, g, lb, ub)
        if stepped:
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
        aux = 1.0 if f > f_prev else (-1.0 if f < f_prev else 0.0)  # the sign of f's change
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


def rule_step(kid, x, g, S, h, t, lr, aux, c):
    """One rule's step: what ``step`` is in the compiled loops (written out there)."""
    _step_coeffs(h, t, lr, aux, c)  # noqa: F821 - bound by compiled_loops
    for i in range(x.shape[0]):
        _step_elem(i, x, g, S, c)  # noqa: F821


def written_out(fn, names, drop=()):
    """``fn`` with every call of a function in ``names`` written out in place.

    Any function boundary with array arguments, even one numba inlines,
    keeps an atomic incref and decref of each array per call: ~55 ns per
    iteration for ``step``'s five arrays and ~30 ns for ``accept``'s four,
    when a whole 2-D Adam iteration, the user's function included, costs
    ~55 ns.  Written out, the arrays are the loop's own and nothing is
    counted.  The sources stay one: this rewrites syntax trees.  A written-out
    function has one ``return``, its last statement, and is called as a
    statement (``f(...)`` or ``a, b = f(...)``) with plain names as arguments.
    ``names`` maps each name to the plain Python function; the result is
    ``fn``'s code with the callees' globals added to its namespace.  The
    parameters named in ``drop`` are removed from ``fn``'s signature: the
    caller binds them as globals (see :func:`compiled_loops`).
    """
    counter = iter(range(1 << 30))

    def body_of(call, callee, args, target):
        tree = ast.parse(textwrap.dedent(inspect.getsource(callee))).body[0]
        params = [a.arg for a in tree.args.args]
        if len(params) != len(args) or not all(isinstance(a, ast.Name) for a in args):
            raise ValueError(f"{callee.__name__}: call with plain names only")
        local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                 and isinstance(n.ctx, ast.Store)} - set(params)  # fmt: skip
        prefix = f"_{callee.__name__}{next(counter)}_"
        rename = {p: a.id for p, a in zip(params, args, strict=True)}
        rename.update({v: prefix + v for v in local})

        class Rename(ast.NodeTransformer):
            def visit_Name(self, node):
                node.id = rename.get(node.id, node.id)
                return node

        stmts = [Rename().visit(st) for st in tree.body]
        if isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant):
            stmts = stmts[1:]  # the docstring
        returns = [n for st in stmts for n in ast.walk(st) if isinstance(n, ast.Return)]
        if returns and (len(returns) > 1 or stmts[-1] is not returns[0]):
            raise ValueError(f"{callee.__name__}: one return, at the end")
        if returns:
            last = stmts.pop()
            if target is not None:
                stmts.append(ast.Assign(targets=[target], value=last.value))
        for st in stmts:  # tracebacks and numba's messages point at the call
            for n in ast.walk(st):
                if "lineno" in n._attributes:
                    ast.copy_location(n, call)
        return stmts

    class WriteOut(ast.NodeTransformer):
        def _call(self, value):
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id in names):  # fmt: skip
                return names[value.func.id], value.args
            return None, None

        def visit_Expr(self, node):
            callee, args = self._call(node.value)
            return node if callee is None else body_of(node, callee, args, None)

        def visit_Assign(self, node):
            callee, args = self._call(node.value)
            if callee is None or len(node.targets) != 1:
                return node
            return body_of(node, callee, args, node.targets[0])

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    ast.increment_lineno(tree, fn.__code__.co_firstlineno - 1)  # the file's line numbers
    fdef = tree.body[0]
    fdef.args.args = [a for a in fdef.args.args if a.arg not in drop]
    tree = ast.fix_missing_locations(WriteOut().visit(tree))
    namespace = dict(fn.__globals__)
    for callee in names.values():
        for k, v in callee.__globals__.items():
            namespace.setdefault(k, v)
    exec(compile(tree, inspect.getsourcefile(fn), "exec"), namespace)
    return namespace[fn.__name__]


#: compiled loops per (rule, fg): bounded, each holds megabytes of machine code
_COMPILED = BoundedCache(GLUE_CACHE_SIZE)


def compiled_loops(kid, fg):
    """``((deterministic_loop, first), (minibatch_loop, first))`` compiled for
    kernel ``kid`` and the user's ``fg``; ``loop(*first, x, ...)`` runs one.

    The compiled driver is specialised per rule: the rule's element and
    coefficient functions and the per-step checks are written out in the loop
    (:func:`written_out`).  A call to a separate kernel costs ~70 ns of
    atomic reference counting on its array arguments, more than a 2-D Adam
    step itself.  ``fg`` is bound as a global, not passed: numba types a
    dispatcher argument from Python on every call into compiled code
    (~4 us: per step with a callback); numba compiles a loop per ``fg``
    either way.  ``first`` is ``()``, or ``(fg,)`` where there is no source
    to rewrite (frozen installs: then calls stay calls and ``fg`` an argument).
    The loops are cached to disk when ``fg`` is (``@njit(cache=True)`` from a
    file, or fastopt's own kernels: :func:`fastopt._jit.bound_loop`).
    """
    key = (kid, fg)
    loops = _COMPILED.get(key)
    if loops is not None:  # (every minimize call asks: the short way first)
        return loops
    if key not in _COMPILED:
        _, kern = KERNEL_TABLE[kid]
        # as in kernels/cpu.py: an element function with scalar helpers is
        # left to LLVM to inline, else its loop does not vectorise
        elem = (_jit.scalar if kern.helpers else _jit.inline)(kern.bind(_jit.scalar))
        coeffs = _jit.inline(kern.coeffs)
        out = {"step": rule_step, "accept": accept.py_func}
        names = {
            "fg": fg,
            "_step_coeffs": coeffs,
            "_step_elem": elem,
            # when there is no source
            "step": _jit.inline(_rebind(rule_step, _step_coeffs=coeffs, _step_elem=elem)),
            "accept": _jit.inline(accept.py_func),
            "project": _jit.inline(project.py_func),
            "projected_inf_norm": _jit.inline(projected_inf_norm.py_func),
            "same_point": _jit.inline(same_point.py_func),
            "finite_fg": _jit.inline(finite_fg.py_func),
            "finite_x": _jit.inline(finite_x.py_func),
            "copy_into": _jit.inline(copy_into.py_func),
        }
        loops = []
        for fn in (deterministic_loop, minibatch_loop):
            try:
                loop, first = written_out(fn, out, drop=("fg",)), ()
            except (OSError, TypeError):  # no source (frozen, zipped)
                loop, first = fn, (fg,)
            loop = _rebind(loop, **names)
            if first:
                loops.append((_jit.user_loop(loop), first))
            else:  # cached where fg is (see _jit.bound_loop)
                loops.append((_jit.bound_loop(loop, (fg,), label=f"kernel{kid}"), first))
        _COMPILED[key] = tuple(loops)
    return _COMPILED[key]


def lr_table(opt, t, nsteps):
    """The learning rates of updates ``t .. t+nsteps-1`` (one entry if constant)."""
    if opt._lr_of is None:
        return opt._lr_const
    return np.array([opt._lr_of(k, opt.base_lr) for k in range(t, t + max(nsteps, 1))])
