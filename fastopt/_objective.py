"""The objective as the drivers and solvers see it, after validation.

:func:`fastopt.minimize` turns the user's ``fun``/``jac``/``hessp``/``args``
and the driver options into one :class:`Objective`; every driver and solver
reads only this, so the scipy calling conventions (``jac=True``, finite
differences, callbacks in two forms) are handled once, in ``_minimize.py``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Objective:
    """A validated problem handed to a driver or solver.

    Attributes
    ----------
    x0 : ndarray, shape (n,)
        A private float copy of the start (float32 or float64); drivers may
        update it in place.
    fun : callable
        ``fun(x, *args) -> float``.
    fg : callable
        ``fg(x, *args) -> (float, ndarray)``: value and gradient at one point.
        With ``compiled=True`` both are numba dispatchers.
    grad : callable or None
        ``grad(x, *args) -> ndarray``: the gradient alone, for the solvers'
        finite-difference curvature products and any other place that needs
        no value.  :func:`fastopt.minimize` passes the user's ``jac`` itself
        (a separate callable), the finite-difference gradient (``jac=None``
        or a scheme), or ``fun(x)[1]`` (``jac=True``: no saving possible).
        None (an Objective built by hand): ``fg(x)[1]``, see
        :func:`grad_from_fg`.
    grad_calls_fun : bool
        True when a ``grad`` call evaluates ``fun`` too (``jac=True``, or
        ``grad`` derived from ``fg``): the solvers then count it in ``nfev``
        as well as ``njev``, so the counts stay the calls the user's
        functions received.  (Finite-difference gradients count their
        function calls themselves, in ``extra_nfev``'s counter.)
    hessp : callable or None
        ``hessp(x, v, *args) -> ndarray``, the user's Hessian-vector product.
    args : tuple
        Extra arguments; in minibatch mode every ndarray with ``ndim >= 1`` is
        sliced along axis 0 (see :mod:`fastopt._batching`).
    compiled : bool
        True when ``fun``, ``fg`` (and ``hessp`` if given) are ``@njit``
        dispatchers, so a solver may run its whole loop in nopython mode.
    lb, ub : ndarray or None
        Bounds kept by projection (None: unbounded).
    maxiter : int
        Maximum number of update steps (iterations).
    gtol : float
        Stop when the inf-norm of the full gradient is <= gtol.
    batch_size, epochs, shuffle, seed
        Minibatch mode when ``batch_size`` is not None.
    callback : callable or None
        ``callback(x, f, g, nit)``; it may raise ``StopIteration`` (status 99).
        Already adapted from both scipy callback forms.
    return_all : bool
        Keep every iterate in ``allvecs``.
    disp : bool
        Print a convergence message at the end.
    first : tuple or None
        ``(f, g)`` at ``x0`` on the full data: :func:`fastopt.minimize` has
        evaluated it once to check the return types.  A runner that uses it
        instead of evaluating again sets ``out["used_first"] = True``.
    extra_nfev : int
        Function evaluations spent by finite-difference gradients (Python
        mode); added to the solver's own ``nfev`` count.
    fd_gradient : bool
        True when ``grad`` is a finite-difference gradient (``jac=None`` or a
        scheme): curvature products that difference it again take a larger
        step (:func:`fastopt.solvers._products.fd_relative_step`).
    """

    x0: np.ndarray
    fun: Callable
    fg: Callable
    hessp: Callable | None
    args: tuple
    compiled: bool = False
    lb: np.ndarray | None = None
    ub: np.ndarray | None = None
    maxiter: int = 1000
    gtol: float = 1e-5
    batch_size: int | None = None
    epochs: int | None = None
    shuffle: bool = True
    seed: int | None = None
    callback: Callable | None = None
    return_all: bool = False
    disp: bool = False
    extra_nfev: int = 0
    first: tuple | None = None
    user: dict[str, Any] | None = None
    grad: Callable | None = None
    grad_calls_fun: bool = False
    fd_gradient: bool = False

    def __post_init__(self):
        if self.grad is None:
            self.grad = grad_from_fg(self.fg, self.compiled)
            self.grad_calls_fun = True


_GRAD_CACHE = None  # a BoundedCache, made on first use (fastopt._user imports this module)


def grad_from_fg(fg, compiled):
    """``grad(x, *args) = fg(x, *args)[1]``, the gradient of a value-and-gradient callable.

    With ``compiled`` and a numba dispatcher ``fg`` the result is an ``@njit``
    function (cached per ``fg``), so the compiled loops can call it; else a
    plain Python function.  It evaluates the value too: count it as both.
    """
    from numba.core.registry import CPUDispatcher

    if not (compiled and isinstance(fg, CPUDispatcher)):

        def grad(x, *args):
            return fg(x, *args)[1]

        return grad
    global _GRAD_CACHE
    if _GRAD_CACHE is None:
        from ._user import GLUE_CACHE_SIZE, BoundedCache

        _GRAD_CACHE = BoundedCache(GLUE_CACHE_SIZE)
    if fg not in _GRAD_CACHE:
        import numba

        @numba.njit
        def grad(x, *args):
            return fg(x, *args)[1]

        grad.fastopt_glue = ("grad", fg)  # see _jit.cache_identity
        _GRAD_CACHE[fg] = grad
    return _GRAD_CACHE[fg]
