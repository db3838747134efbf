"""Boundary checks of what a user hands :func:`fastopt.minimize`, with uniform messages.

Shared by the host and device front ends.  Numba does no bounds checking, so
everything that reaches compiled code is checked here first.
"""

import numpy as np
from numba.core.registry import CPUDispatcher


def as_x0(x0):
    x = np.asarray(x0)
    if x.ndim != 1:
        raise ValueError(f"x0 must be 1-D, got an array of shape {x.shape}")
    if x.size == 0:
        raise ValueError("x0 must have at least one element")
    if x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.number) and not np.iscomplexobj(x)):
            raise ValueError(f"x0 must be real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"x0 must be finite; x0[{bad[0]}] = {x[bad[0]]}")
    # a private, contiguous copy: the caller's x0 is never modified
    return np.array(x, dtype=x.dtype, order="C", copy=True)


def as_bounds(bounds, x):
    if bounds is None:
        return None, None
    n = x.shape[0]
    from scipy.optimize import Bounds

    if isinstance(bounds, Bounds):
        lb = np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,))
        ub = np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,))
    else:
        b = list(bounds)
        if len(b) != n:
            raise ValueError(f"bounds has {len(b)} pairs but x0 has {n} elements")
        lb = np.array([-np.inf if p[0] is None else p[0] for p in b], dtype=float)
        ub = np.array([np.inf if p[1] is None else p[1] for p in b], dtype=float)
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise ValueError("bounds must not be NaN (use None or +-inf for no bound)")
    if np.any(lb > ub):
        k = int(np.flatnonzero(lb > ub)[0])
        raise ValueError(f"bounds: lower bound {lb[k]} > upper bound {ub[k]} at index {k}")
    lb = np.ascontiguousarray(lb, dtype=x.dtype)
    ub = np.ascontiguousarray(ub, dtype=x.dtype)
    np.clip(x, lb, ub, out=x)
    return lb, ub


def is_jitted(f):
    return isinstance(f, CPUDispatcher)


def check_value(f, where):
    f = np.asarray(f)
    if f.size != 1:
        raise ValueError(f"fun must return a scalar; {where} returned an array of shape {f.shape}")
    return f.reshape(()).item()


def check_grad(g, x, where):
    g = np.asarray(g)
    if g.shape != x.shape:
        raise ValueError(
            f"jac must return an array of shape {x.shape}; {where} returned shape {g.shape}"
        )
    return g
