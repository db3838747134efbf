"""Boundary checks of what a user hands :func:`fastopt.minimize`, with uniform messages.

Shared by the host and device front ends.  Numba does no bounds checking, so
everything that reaches compiled code is checked here first, and every
message names the argument as the user wrote it (``maxiter``, ``jac``,
``bounds``), never a numba ``TypingError`` or an ``AttributeError`` from
deep inside.
"""

import math
import numbers
import operator
from collections.abc import Mapping

import numpy as np
from numba.core.registry import CPUDispatcher

#: the largest iteration count: ``maxiter=np.inf`` (no limit) becomes this
NO_LIMIT = np.iinfo(np.int64).max

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: finite-difference schemes ``jac`` may name (scipy's)
FD_SCHEMES = ("2-point", "3-point", "cs")


def _describe(value):
    """``value`` for an error message: its repr, or its type and shape for arrays."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def as_x0(x0):
    """``x0`` as a private, C-contiguous 1-D float copy (scipy: ``np.atleast_1d``).

    A scalar becomes a 1-element vector, as in :func:`scipy.optimize.minimize`;
    integers become float64; float32 stays float32.
    """
    if type(x0) is np.ndarray and x0.ndim == 1 and x0.dtype in _FLOATS and x0.shape[0]:
        # the common case, without the general path's temporaries: a copy, and
        # a sum that is finite only if every element is (else check properly)
        x = x0.copy()
        if math.isfinite(x.sum()):
            return x
    try:
        x = np.atleast_1d(np.asarray(x0))
    except (TypeError, ValueError) as e:
        raise ValueError(f"x0 must be an array of real numbers; got {_describe(x0)}") from e
    if x.ndim != 1:
        raise ValueError(f"x0 must be 1-D, got an array of shape {x.shape}")
    if x.size == 0:
        raise ValueError("x0 must have at least one element")
    if x.dtype not in (np.float32, np.float64):
        if x.dtype == np.bool_ or not (
            np.issubdtype(x.dtype, np.number) and not np.iscomplexobj(x)
        ):
            raise ValueError(f"x0 must be real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"x0 must be finite; x0[{bad[0]}] = {x[bad[0]]}")
    # a private, contiguous copy: the caller's x0 is never modified
    return np.array(x, dtype=x.dtype, order="C", copy=True)


def _bound_side(value, k, side):
    if value is None:
        return -np.inf if side == 0 else np.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds[{k}][{side}] must be a number or None; got {_describe(value)}"
        ) from None


def as_bounds(bounds, x):
    """``(lb, ub)`` arrays of ``x``'s dtype from scipy's two bounds forms (and clip ``x``).

    ``bounds`` is a sequence of ``(min, max)`` pairs (None: unbounded) or a
    :class:`scipy.optimize.Bounds`.  NaN, inverted bounds, a lower bound of
    ``+inf`` or an upper one of ``-inf`` are a ValueError.
    """
    if bounds is None:
        return None, None
    n = x.shape[0]
    from scipy.optimize import Bounds

    if isinstance(bounds, Bounds):
        try:
            lb = np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,))
            ub = np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,))
        except ValueError:
            raise ValueError(
                f"bounds: Bounds.lb and Bounds.ub must broadcast to x0's shape ({n},); got "
                f"{np.shape(bounds.lb)} and {np.shape(bounds.ub)}"
            ) from None
    else:
        try:
            b = list(bounds)
        except TypeError:
            raise ValueError(
                f"bounds must be a sequence of (min, max) pairs or scipy.optimize.Bounds; "
                f"got {_describe(bounds)}"
            ) from None
        if len(b) != n:
            raise ValueError(f"bounds has {len(b)} pairs but x0 has {n} elements")
        for k, p in enumerate(b):
            if isinstance(p, str | bytes) or not hasattr(p, "__len__") or len(p) != 2:
                raise ValueError(
                    f"bounds[{k}] must be a (min, max) pair; got {_describe(p)} "
                    "(bounds is a sequence of pairs, one per element of x0)"
                )
        lb = np.array([_bound_side(p[0], k, 0) for k, p in enumerate(b)])
        ub = np.array([_bound_side(p[1], k, 1) for k, p in enumerate(b)])
    for name, side in (("lower", lb), ("upper", ub)):
        if np.any(np.isnan(side)):
            k = int(np.flatnonzero(np.isnan(side))[0])
            raise ValueError(f"bounds: {name} bound at index {k} is NaN")
    if np.any(lb > ub):
        k = int(np.flatnonzero(lb > ub)[0])
        raise ValueError(f"bounds: lower bound {lb[k]} > upper bound {ub[k]} at index {k}")
    # lb = ub = +inf (or -inf) passes the test above, yet no finite point
    # satisfies it: the run would start from an infinite x
    for name, side, sign in (("lower", lb, np.inf), ("upper", ub, -np.inf)):
        if np.any(side == sign):
            k = int(np.flatnonzero(side == sign)[0])
            raise ValueError(f"bounds: {name} bound at index {k} is {side[k]} (no finite x "
                             "satisfies it; None or -inf/inf mean no bound)")  # fmt: skip
    lb = np.ascontiguousarray(lb, dtype=x.dtype)
    ub = np.ascontiguousarray(ub, dtype=x.dtype)
    np.clip(x, lb, ub, out=x)
    return lb, ub


def is_jitted(f):
    """True for a numba CPU dispatcher (an ``@njit`` function)."""
    return isinstance(f, CPUDispatcher)


def check_value(f, where):
    """``f`` as a Python float: a real scalar, 0-d or 1-element array (scipy accepts these)."""
    if isinstance(f, float):
        return f
    if f is None or isinstance(f, str | bytes | tuple | list | dict):
        hint = " (with jac=True, fun returns (f, g))" if isinstance(f, tuple) else ""
        raise TypeError(f"fun must return a real number; {where} returned {_describe(f)}{hint}")
    try:
        a = np.asarray(f)
    except Exception:  # noqa: BLE001 - any object numpy cannot read is the user's error
        a = None
    if a is None or not (np.issubdtype(a.dtype, np.number) and not np.iscomplexobj(a)):
        raise TypeError(f"fun must return a real number; {where} returned {_describe(f)}")
    if a.size != 1:
        raise ValueError(f"fun must return a scalar; {where} returned an array of shape {a.shape}")
    return float(a.reshape(()).item())


def check_grad(g, x, where, name="jac"):
    """``g`` as a C-contiguous array of ``x``'s shape and dtype, or a ValueError/TypeError."""
    if type(g) is np.ndarray and g.shape == x.shape:
        if g.dtype == x.dtype and g.flags.c_contiguous:
            return g
    elif g is None or isinstance(g, str | bytes | dict):
        raise TypeError(f"{name} must return an array of shape {x.shape}; {where} returned "
                        f"{_describe(g)}")  # fmt: skip
    try:
        a = np.asarray(g)
    except Exception:  # noqa: BLE001
        raise TypeError(f"{name} must return an array of shape {x.shape}; {where} returned "
                        f"{_describe(g)}") from None  # fmt: skip
    if a.shape != x.shape:
        raise ValueError(
            f"{name} must return an array of shape {x.shape}; {where} returned shape {a.shape}"
        )
    if not (np.issubdtype(a.dtype, np.number) and not np.iscomplexobj(a)):
        raise TypeError(f"{name} must return real numbers; {where} returned dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=x.dtype)


def check_fg_pair(out, where):
    """``(f, g)`` from a ``jac=True`` objective, or a TypeError that names ``jac=True``."""
    if isinstance(out, tuple | list) and len(out) == 2:
        return out
    raise TypeError(
        f"jac=True means fun returns (f, g), a value and a gradient; {where} returned "
        f"{_describe(out)}. Pass jac=None for finite differences or give jac separately."
    )


def as_options(options):
    """``options`` as a new dict (None: empty); anything but a mapping is a TypeError."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of option names to values; got "
                        f"{_describe(options)}")  # fmt: skip
    bad = [k for k in options if not isinstance(k, str)]
    if bad:
        raise TypeError(f"options keys must be strings; got {bad[0]!r}")
    return dict(options)


def as_count(value, name, allow_inf=False, minimum=0):
    """A whole number ``>= minimum`` (``inf`` -> :data:`NO_LIMIT` when ``allow_inf``).

    Integral floats (``10.0``) are accepted as scipy does; ``1.7``, strings and
    booleans are a ValueError naming ``name``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"Invalid {name} value: {_describe(value)} (need a whole number)")
    if allow_inf and value == np.inf:
        return NO_LIMIT
    try:
        k = operator.index(value)
    except TypeError:
        if not (np.isfinite(value) and float(value).is_integer()):
            extra = " or inf" if allow_inf else ""
            raise ValueError(
                f"Invalid {name} value: {value!r} (need a whole number{extra})"
            ) from None
        k = int(value)
    if k < minimum:
        raise ValueError(f"Invalid {name} value: {value!r} (need >= {minimum})")
    return min(k, NO_LIMIT)


def as_real(value, name, minimum=0.0):
    """A real number ``>= minimum`` (not NaN), or a ValueError naming ``name``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"Invalid {name} value: {_describe(value)} (need a real number)")
    v = float(value)
    if not v >= minimum:
        raise ValueError(f"Invalid {name} value: {value!r} (need >= {minimum})")
    return v


def as_seed(seed):
    """``seed``: None or a non-negative integer (numpy's ``SeedSequence`` rule)."""
    if seed is None:
        return None
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"Invalid seed value: {_describe(seed)} (need None or an integer >= 0)")
    if seed < 0:
        raise ValueError(f"Invalid seed value: {seed} (need None or an integer >= 0)")
    return int(seed)


def as_jac(jac):
    """``jac`` checked: a callable, True, a finite-difference scheme, or None/False."""
    if jac is None or jac is False or jac is True or callable(jac):
        return jac
    if isinstance(jac, str) and jac in FD_SCHEMES:
        return jac
    raise ValueError(
        f"Invalid jac: {_describe(jac)}; expected a callable, True (fun returns (f, g)), "
        f"one of {', '.join(repr(s) for s in FD_SCHEMES)}, or None (finite differences)"
    )


def as_callable(fn, name, optional=True):
    """``fn`` if it is callable (or None when ``optional``), else a TypeError naming it."""
    if fn is None and optional:
        return None
    if not callable(fn):
        raise TypeError(f"{name} must be callable; got {_describe(fn)}")
    return fn
