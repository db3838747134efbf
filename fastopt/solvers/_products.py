"""Curvature products and diagonals: the user's, checked on every call, or finite differences.

Numba does no bounds checking: a ``hessp`` or ``diagonal`` that returns an
array of the wrong length would be read past (or written past) by the
compiled loops.  Every product the loops receive is therefore checked for
shape on every call, in Python mode by a wrapper and in compiled mode by a
check compiled into the loop that stops the run with a clear error.
"""

import math

import numpy as np

from ._lazy_loop import dual
from ._vectors import dot, fd_quotient, lincomb

#: sqrt(machine epsilon): the relative step of the finite-difference products
SQRT_EPS = math.sqrt(np.finfo(np.float64).eps)


class ShapeChecked:
    """Python-mode wrapper that checks a product's shape on its first call.

    Later calls only convert the result to a float64 array; the check costs
    one attribute test per call.
    """

    def __init__(self, fn, n, name):
        self.fn = fn
        self.n = n
        self.name = name
        self.checked = False

    def __call__(self, x, v, *args):
        out = np.asarray(self.fn(x, v, *args), dtype=np.float64)
        if not self.checked:
            check_product_shape(out, self.n, self.name)
            self.checked = True
        return out


def check_product_shape(out, n, name):
    """Raise ValueError unless ``out`` has shape ``(n,)``."""
    shape = np.shape(out)
    if shape != (n,):
        raise ValueError(f"{name} must return an array of shape ({n},); got shape {shape}")


def prepare_product(fn, compiled, x, args, name):
    """The product callable the loop receives, checked for its output shape.

    Python mode wraps ``fn`` in :class:`ShapeChecked` (the first product in
    the loop is checked).  Compiled mode cannot raise a readable error from
    inside the loop, so the product is evaluated once here, from Python, at
    ``x`` along a unit vector; returns ``(product, extra_evaluations)``.
    """
    n = x.shape[0]
    if not compiled:
        return ShapeChecked(fn, n, name), 0
    v = np.full(n, 1.0 / math.sqrt(max(n, 1)))
    check_product_shape(fn(x, v, *args), n, name)
    return fn, 1


class _DiagonalChecked:
    """Python-mode ``diagonal`` that checks its output shape on the first call."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n
        self.checked = False

    def __call__(self, x, *args):
        out = np.asarray(self.fn(x, *args), dtype=np.float64)
        if not self.checked:
            check_product_shape(out, self.n, "diagonal")
            self.checked = True
        return out


def prepare_diagonal(fn, compiled, x, args):
    """The ``diagonal`` option as the loop receives it, shape-checked.

    As :func:`prepare_product`: Python mode checks the first call; compiled
    mode evaluates it once here, at ``x``, to raise a readable error.
    Returns ``(diagonal, extra_evaluations)``.  Used by AdaHessian (its
    curvature) and Hessian-free (its preconditioner).
    """
    n = x.shape[0]
    if not compiled:
        return _DiagonalChecked(fn, n), 0
    check_product_shape(fn(x, *args), n, "diagonal")
    return fn, 1


@dual
def hvp(prod, fg, x, v, gx, args):
    r"""A curvature product ``G v``: ``prod(x, v, *args)``, or a finite difference.

    With ``prod`` None: the forward difference of the gradient
    :math:`(\nabla f(x + e v) - \nabla f(x))/e` with
    :math:`e = \sqrt{\epsilon}\,(1 + \|x\|)/\|v\|`, a step relative to
    the size of ``x`` and independent of the length of ``v`` (``gx`` is the
    gradient at ``x`` on the same ``args``).  In compiled loops the None test
    is resolved at compile time, so each case compiles only its own branch.
    """
    if prod is None:
        e = SQRT_EPS * (1.0 + math.sqrt(dot(x, x))) / math.sqrt(dot(v, v))
        _, g_plus = fg(lincomb(1.0, x, e, v), *args)
        return fd_quotient(g_plus, gx, e)
    return prod(x, v, *args)


@dual
def curvature_product(prod, grad, x, v, gx, args):
    r""":func:`hvp` with a gradient-only ``grad(x, *args)`` for the finite difference.

    ``prod(x, v, *args)`` when given, else
    :math:`(\nabla f(x + e v) - \nabla f(x))/e` with
    :math:`e = \sqrt{\epsilon}\,(1 + \|x\|)/\|v\|`: the difference needs
    no function value, so it costs one gradient evaluation
    (:attr:`fastopt._objective.Objective.grad`), not a value-and-gradient.
    """
    if prod is None:
        e = SQRT_EPS * (1.0 + math.sqrt(dot(x, x))) / math.sqrt(dot(v, v))
        g_plus = grad(lincomb(1.0, x, e, v), *args)
        return fd_quotient(g_plus, gx, e)
    return prod(x, v, *args)
