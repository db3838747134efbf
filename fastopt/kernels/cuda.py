"""GPU step kernels built lazily from the rules' single ``elem`` source.

For kernel id ``kid`` the step kernel is a grid-stride loop over
``cuda.jit(device=True)(elem)`` of :data:`fastopt.rules.KERNEL_TABLE` ``[kid]``:
the same scalar code that the CPU kernels inline.  Nothing here is compiled
before it is first used, and this module is imported only when a device
array or ``device="cuda"`` asks for it (``import fastopt`` does not import
``numba.cuda``).

The per-step coefficients are computed on the host by
:func:`fastopt.kernels.cpu.coefficients` and passed *by value* as a tuple of
scalars of the parameters' dtype: no host-to-device copy per step, and a
float32 kernel sees only float32 constants (a float64 scalar or a Python float
literal would turn its arithmetic into float64 on a real GPU; ``elem`` takes
every constant from ``c``).

Device state: :class:`~fastopt.optim.OptState` with ``slots`` a numba device
array; :meth:`~fastopt.optim.OptState.to_dict` copies it to the host and
:meth:`~fastopt.optim.Optimizer.state_from_dict` ``(d, like=x)`` uploads it.
"""

import math

import numpy as np

from .. import _device
from ..rules import KERNEL_TABLE
from . import cpu

cuda = _device.import_cuda()

# Launch shape: grid-stride loops, so any grid is correct; these only set how
# much work each launch exposes.  Under the simulator every thread is a Python
# thread: a tiny grid (that still exercises the stride loop) keeps it fast.
if _device.simulator_requested():
    THREADS, MAX_BLOCKS = 32, 2
else:
    THREADS, MAX_BLOCKS = 256, None  # None: 32 blocks per multiprocessor

_STEP = {}
_CHECK = {}
_SMALL = {}


def launch_config(threads=None, max_blocks=None):
    """Set (and return) the threads per block and the largest grid used by every launch."""
    global THREADS, MAX_BLOCKS
    if threads is not None:
        if not (isinstance(threads, int) and threads >= 32 and threads % 32 == 0):
            raise ValueError(f"Invalid threads value: {threads} (need a multiple of 32)")
        THREADS = threads
    if max_blocks is not None:
        if not (isinstance(max_blocks, int) and max_blocks >= 1):
            raise ValueError(f"Invalid max_blocks value: {max_blocks}")
        MAX_BLOCKS = max_blocks
    return THREADS, MAX_BLOCKS


def _grid(n, reduction=False):
    global MAX_BLOCKS
    if MAX_BLOCKS is None:
        MAX_BLOCKS = 32 * cuda.get_current_device().MULTIPROCESSOR_COUNT
    cap = MAX_BLOCKS
    if reduction:  # one atomic per warp: keep the grid near one wave
        cap = min(cap, max(2, MAX_BLOCKS // 8))
    return max(1, min((n + THREADS - 1) // THREADS, cap)), THREADS


# -- kernel sources (plain Python functions; also compiled to PTX by the tests) ---------


def step_source(kid):
    """The Python source of kernel ``kid``'s step: ``(x, g, S, c)``, ``c`` a tuple."""
    elem = cuda.jit(device=True)(KERNEL_TABLE[kid][1].bind(cuda.jit(device=True)))

    # `cuda.` is this module's global: the simulator swaps it for its fake module
    def step_kernel(x, g, S, c):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            elem(i, x, g, S, c)

    step_kernel.__name__ = f"step_{KERNEL_TABLE[kid][0].replace('-', '_m').replace('+', '_p')}"
    return step_kernel


def check_source(nbtype, warp_reduce):
    """Finiteness of ``x`` and ``g`` and ``max|g|`` in one pass, for dtype ``nbtype``.

    ``out`` has shape (2, 3): row ``r`` receives ``[x non-finite, g non-finite,
    max|g|]`` (flags as 1) and must be zero on entry; the kernel zeroes row
    ``1 - r`` for the next call, so no reset copy is needed between steps.

    No ``syncthreads``: each simulated barrier costs ~40 ms.  On a GPU
    (``warp_reduce``) each warp reduces with shuffles and one lane per warp
    does the atomic max; the simulator has no shuffles, so there every thread
    does its own atomic max.
    """

    def check_kernel(x, g, out, r):
        zero = nbtype(0)
        one = nbtype(1)
        m = zero
        bad_x = False
        bad_g = False
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            if not math.isfinite(x[i]):
                bad_x = True
            if not math.isfinite(g[i]):
                bad_g = True
            a = abs(g[i])
            if a > m:
                m = a
        if bad_x:
            out[r, 0] = one
        if bad_g:
            out[r, 1] = one
        if warp_reduce:  # every block is whole warps and no thread has left: full mask
            off = 16
            while off > 0:
                other = cuda.shfl_down_sync(0xFFFFFFFF, m, off)
                if other > m:
                    m = other
                off //= 2
            if cuda.laneid == 0:
                cuda.atomic.max(out, (r, 2), m)
        else:
            cuda.atomic.max(out, (r, 2), m)
        if cuda.grid(1) == 0:
            out[1 - r, 0] = zero
            out[1 - r, 1] = zero
            out[1 - r, 2] = zero

    return check_kernel


def _project_kernel(x, lb, ub):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        if x[i] < lb[i]:
            x[i] = lb[i]
        elif x[i] > ub[i]:
            x[i] = ub[i]


def _cast_copy_kernel(dst, src):
    for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
        dst[i] = src[i]


# -- compiled kernels, built on first use ----------------------------------------------


def step_kernel(kid):
    """The compiled step kernel of kernel id ``kid`` (one dispatcher; per-dtype code)."""
    k = _STEP.get(kid)
    if k is None:
        k = _STEP[kid] = cuda.jit(step_source(kid))
    return k


def _check_kernel(dtype):
    key = np.dtype(dtype)
    k = _CHECK.get(key)
    if k is None:
        from numba.np.numpy_support import from_dtype

        warp_reduce = not _device.simulator_requested()
        k = _CHECK[key] = cuda.jit(check_source(from_dtype(key), warp_reduce))
    return k


def _small(name):
    k = _SMALL.get(name)
    if k is None:
        k = _SMALL[name] = cuda.jit({"project": _project_kernel,
                                     "cast": _cast_copy_kernel}[name])  # fmt: skip
    return k


# -- arrays ------------------------------------------------------------------------------


def as_numba(x):
    """A numba device array viewing ``x`` (zero copy); ``x`` itself if it is one."""
    if _device.is_numba_device_array(x):
        return x
    if not hasattr(cuda, "as_cuda_array"):
        raise TypeError(
            f"the CUDA simulator takes numba device arrays only (cuda.to_device), "
            f"got {type(x).__module__}.{type(x).__name__}"
        )
    return cuda.as_cuda_array(x)


def check_params(x):
    """``x`` as a numba device array: 1-D, float32 or float64, contiguous."""
    d = as_numba(x)
    if d.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {tuple(d.shape)}")
    if d.dtype not in (np.float32, np.float64):
        raise ValueError(f"x must be float32 or float64, got {d.dtype}")
    if not d.is_c_contiguous():
        raise ValueError("x must be contiguous (it is updated in place)")
    return d


def as_grad(g, xd, buf=None, where="g"):
    """``g`` as a numba device array of ``xd``'s shape and dtype.

    Device arrays are viewed (zero copy); a different dtype is cast on the
    device into ``buf``; host arrays are uploaded into ``buf`` (allocated if None).
    """
    n = xd.shape[0]
    if _device.is_device_array(g):
        gd = as_numba(g)
        if tuple(gd.shape) != (n,):
            raise ValueError(f"{where} must have shape {(n,)}, got {tuple(gd.shape)}")
        if gd.dtype == xd.dtype:
            return gd
        if buf is None:
            buf = cuda.device_array(n, dtype=xd.dtype)
        blocks, threads = _grid(n)
        _small("cast")[blocks, threads](buf, gd)
        return buf
    ga = np.asarray(g)
    if ga.shape != (n,):
        raise ValueError(f"{where} must have shape {(n,)}, got {ga.shape}")
    ga = np.ascontiguousarray(ga, dtype=xd.dtype)
    if buf is None:
        return cuda.to_device(ga)
    buf.copy_to_device(ga)
    return buf


def copy(d):
    """A device-to-device copy of the numba device array ``d``."""
    out = cuda.device_array(d.shape, dtype=d.dtype)
    out.copy_to_device(d)
    return out


# -- optimizer API on the device ---------------------------------------------------------


def init_state(opt, x):
    """A fresh :class:`~fastopt.optim.OptState` on the device, for parameters like ``x``."""
    _device.require_cuda()
    d = check_params(x)
    host = opt.init(np.zeros(d.shape[0], dtype=d.dtype))  # slot_init values, on the host
    return host._replace(slots=cuda.to_device(host.slots))


def upload_state(state, like):
    """``state`` (host slots) with its slots copied to the device, in ``like``'s dtype."""
    _device.require_cuda()
    d = check_params(like)
    S = np.ascontiguousarray(state.slots, dtype=d.dtype)
    n = d.shape[0]
    if S.shape[0] == 0:
        S = np.zeros((0, n), dtype=d.dtype)
    if S.shape != (len(state.names), n):
        raise ValueError(f"state slots have shape {S.shape}; x needs {(len(state.names), n)}")
    return state._replace(slots=cuda.to_device(S))


def launch_step(kid, h, t, lr, aux, xd, gd, S):
    """One update of the device array ``xd`` in place (coefficients passed by value)."""
    c = tuple(cpu.coefficients(kid, h, t, lr, aux, xd.dtype))
    blocks, threads = _grid(xd.shape[0])
    step_kernel(kid)[blocks, threads](xd, gd, S, c)


def step(opt, x, g, state, value=None):
    """:meth:`fastopt.optim.Optimizer.step` for a device ``x``; see there."""
    t = state.count + 1
    lr = opt.lr(t - 1)
    aux = 0.0
    if opt.needs_value:
        if value is None:
            raise ValueError(
                "rprop variant 'irprop+' needs the objective: step(x, g, state, value=f)"
            )
        v, last = float(value), state.last_value
        aux = 1.0 if v > last else (-1.0 if v < last else 0.0)  # the sign of f's change
    xd = as_numba(x)
    S = state.slots
    if not _device.is_numba_device_array(S):
        raise ValueError("x is on the device but the state is on the host: create it with "
                         "opt.init(x) or opt.state_from_dict(d, like=x)")  # fmt: skip
    n = xd.shape[0]
    if state.kernel is not None and state.kernel != opt.key:
        raise ValueError(f"state is of {state.kernel!r}; this optimizer runs {opt.key!r}")
    if tuple(S.shape) != (len(opt.slot_names), n):
        raise ValueError("x, g and the state must have the same length")
    if S.dtype != xd.dtype:
        raise ValueError(f"the state is {S.dtype} but x is {xd.dtype}: they must agree")
    if isinstance(state.count, bool) or not isinstance(state.count, int | np.integer) or t < 1:
        raise ValueError(f"Invalid count value: {state.count!r} (need an integer >= 0)")
    gd = as_grad(g, xd)
    scalars = state.scalars
    if opt._scalar_idx:  # NAdam's mu_product: through h, as on the CPU
        opt._load_scalars(state, t - 1)
    launch_step(opt.kid, opt.h, t, lr, aux, xd, gd, S)
    if opt._scalar_idx:
        scalars = opt._scalars_now()
    return state._replace(
        count=t, last_value=float("nan") if value is None else float(value), scalars=scalars
    )


# -- the per-iteration checks of the device driver ----------------------------------------


class Checks:
    """Finiteness checks and ``max|g|`` as one device reduction per step.

    One launch and one 6-value device-to-host copy per call; the two result
    rows alternate so that no reset copy is needed.
    """

    def __init__(self, n, dtype):
        self.n = n
        self.kernel = _check_kernel(dtype)
        self.out = cuda.to_device(np.zeros((2, 3), dtype=dtype))
        self.host = cuda.pinned_array((2, 3), dtype=dtype)
        self.r = 0

    def __call__(self, xd, gd):
        """``(x non-finite, g non-finite, max|g|)``."""
        r = self.r
        blocks, threads = _grid(self.n, reduction=True)
        self.kernel[blocks, threads](xd, gd, self.out, r)
        self.out.copy_to_host(self.host)
        self.r = 1 - r
        row = self.host[r]
        return bool(row[0] != 0), bool(row[1] != 0), float(row[2])


def project(xd, lb, ub):
    """Clip the device array ``xd`` into ``[lb, ub]`` (device arrays) in place."""
    blocks, threads = _grid(xd.shape[0])
    _small("project")[blocks, threads](xd, lb, ub)
