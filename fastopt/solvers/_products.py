"""Curvature products and diagonals: the user's, checked on every call, or finite differences.

Numba does no bounds checking: a ``hessp`` or ``diagonal`` that returns an
array of the wrong length would be read past (or written past) by the
compiled loops.  Every product the loops receive is therefore checked for
shape on every call, in Python mode by a wrapper and in compiled mode by a
glue function compiled into the loop that raises ValueError out of it
(:mod:`fastopt._user`).
"""

import math

import numpy as np

from .._user import checked_product, python_product
from .._validation import check_grad
from ._lazy_loop import dual
from ._vectors import dot, fd_quotient, lincomb

#: sqrt(machine epsilon): the relative step of the finite-difference products
SQRT_EPS = math.sqrt(np.finfo(np.float64).eps)


def check_product_shape(out, n, name):
    """Raise ValueError unless ``out`` has shape ``(n,)``."""
    shape = np.shape(out)
    if shape != (n,):
        raise ValueError(f"{name} must return an array of shape ({n},); got shape {shape}")


def prepare_product(fn, compiled, x, args, name):
    """The product callable the loop receives, its output checked on every call.

    Python mode wraps ``fn`` (:func:`fastopt._user.python_product`: copies
    of ``x`` and ``v`` in, shape checked out).  Compiled mode evaluates it
    once here, from Python, at ``x`` along a unit vector, so a wrong return
    type is a readable error rather than a numba TypingError, and hands the
    loop a compiled glue that compares the length on every call
    (:func:`fastopt._user.checked_product`); returns ``(product,
    extra_evaluations)``.
    """
    n = x.shape[0]
    if not compiled:
        return python_product(fn, n, name), 0
    v = np.full(n, 1.0 / math.sqrt(max(n, 1)))
    check_grad(fn(x.copy(), v, *args), x, f"{name}(x0, v)", name)
    return checked_product(fn), 1


def prepare_diagonal(fn, compiled, x, args):
    """The ``diagonal`` option as the loop receives it, checked on every call.

    As :func:`prepare_product`.  Used by AdaHessian (its curvature) and
    Hessian-free (its preconditioner).  Returns ``(diagonal,
    extra_evaluations)``.
    """
    n = x.shape[0]
    if not compiled:
        return python_product(fn, n, "diagonal"), 0
    check_grad(fn(x.copy(), *args), x, "diagonal(x0)", "diagonal")
    return checked_product(fn, "diagonal"), 1


@dual
def curvature_product(prod, grad, x, v, gx, args, rel):
    r"""A curvature product ``G v``: ``prod(x, v, *args)``, or a finite difference.

    With ``prod`` None: the forward difference of the gradient-only
    ``grad(x, *args)`` (:attr:`fastopt._objective.Objective.grad`; one
    gradient evaluation, no value),
    :math:`(\nabla f(x + e v) - \nabla f(x))/e` with
    :math:`e = \mathrm{rel}\,(1 + \|x\|)/\|v\|`, a step relative to the
    size of ``x`` and independent of the length of ``v`` (``gx``: the
    gradient at ``x`` on the same ``args``; ``rel``: see
    :func:`fd_relative_step`).  In compiled loops the None test is resolved
    at compile time, so each case compiles only its own branch.
    """
    if prod is None:
        e = rel * (1.0 + math.sqrt(dot(x, x))) / math.sqrt(dot(v, v))
        return fd_quotient(grad(lincomb(1.0, x, e, v), *args), gx, e)
    return prod(x, v, *args)


#: the relative step of a finite-difference product when the gradient is
#: itself a finite difference (``jac=None``): about eps**(1/4)
FD_GRADIENT_STEP = 1e-4


def fd_relative_step(fd_step, obj):
    r"""The relative step of the finite-difference curvature products.

    ``fd_step`` when given (checked: a number in (0, 1)); else
    :math:`\sqrt{\epsilon_{mach}}` for an exact gradient and
    :data:`FD_GRADIENT_STEP` for a finite-difference one
    (:attr:`fastopt._objective.Objective.fd_gradient`).  A finite-difference
    gradient carries a rounding error of about
    :math:`\sqrt{\epsilon_{mach}}\,|f|`; differenced again over a step of
    :math:`\sqrt{\epsilon_{mach}}` it becomes an :math:`O(|f|)` error in
    every product (issue 11: Hessian-free with ``jac=None`` failed five
    badly scaled MGH problems that ``jac="3-point"`` solves).  A step of
    :math:`10^{-4}` keeps that error near :math:`10^{-4}|f|` for a
    truncation error of :math:`O(10^{-4})`; Møller's SCG uses the same size.
    """
    if fd_step is None:
        return FD_GRADIENT_STEP if getattr(obj, "fd_gradient", False) else SQRT_EPS
    return float(fd_step)


def check_fd_step(value):
    """Raise ValueError unless ``value`` is None or a number in (0, 1)."""
    if value is None:
        return
    if not (isinstance(value, int | float | np.floating | np.integer)
            and not isinstance(value, bool) and math.isfinite(value)
            and 0.0 < value < 1.0):  # fmt: skip
        raise ValueError(f"Invalid fd_step value: {value!r} (need a number in (0, 1), or None)")
