"""Tests of the CUDA device path: kernels, optimizer API and ``minimize`` on the device.

How these run (style.md item 9: GPU optional and honest, CUDA tests under the
simulator in CI):

- Device tests need a usable device *in this process*: a real GPU, or the
  CUDA simulator, which numba only enables when ``NUMBA_ENABLE_CUDASIM=1`` is
  set before it is imported.  A plain ``python -m pytest`` (no GPU) therefore
  skips them here and :func:`test_simulator_suite` runs this file again in a
  subprocess with the variable set, so one ``pytest`` command covers all.
  To run the simulator suite directly:
  ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/test_cuda.py``.
- On a machine with a GPU the same device tests run on the GPU, in process.
- The PTX test compiles each rule's float32 kernel with ``numba.cuda.compile_ptx``
  (libNVVM, no GPU needed) and checks it has no float64 instruction; it runs
  outside the simulator and skips when numba-cuda or libNVVM is missing.
- The simulator runs every GPU thread as a Python thread and costs ~40 ms per
  ``syncthreads``: arrays are small (n = 100), grids are 32 threads x 2
  blocks (:mod:`fastopt.kernels.cuda` picks that under the simulator), so the
  grid-stride loops are exercised.
"""

import glob
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastopt
from fastopt import _device
from fastopt._status import CALLBACK, MAXITER, NONFINITE_F, NONFINITE_G, NONFINITE_X
from fastopt.rules import KERNEL_TABLE

STATUS = _device.cuda_status()
ON_SIM = STATUS.usable and STATUS.simulator
needs_device = pytest.mark.skipif(
    not STATUS.usable,
    reason=f"no CUDA device in this process ({STATUS.reason}); test_simulator_suite runs "
    "these under NUMBA_ENABLE_CUDASIM=1",
)
needs_gpu = pytest.mark.skipif(
    not STATUS.usable or STATUS.simulator, reason=f"needs a real GPU ({STATUS.reason})"
)
# tiny test grids on a real GPU warn about occupancy; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

ROOT = Path(__file__).resolve().parent.parent
N = 100
STEPS = 20

# one optimizer per kernel variant: method and options that select it, with
# non-default values so that every coefficient matters
CONFIGS = {
    "sgd": ("sgd", {"learning_rate": 0.05, "weight_decay": 0.01}),
    "momentum": ("momentum", {"learning_rate": 0.05, "dampening": 0.1, "weight_decay": 0.01}),
    "nag": ("nag", {"learning_rate": 0.05, "weight_decay": 0.01}),
    "irprop-": ("rprop", {"variant": "irprop-", "learning_rate": 0.05}),
    "rprop-": ("rprop", {"variant": "rprop-", "learning_rate": 0.05}),
    "rprop+": ("rprop", {"variant": "rprop+", "learning_rate": 0.05}),
    "irprop+": ("rprop", {"variant": "irprop+", "learning_rate": 0.05}),
    "adagrad": ("adagrad", {"learning_rate": 0.05, "lr_decay": 0.01,
                            "initial_accumulator_value": 0.1, "weight_decay": 0.01}),
    "rmsprop": ("rmsprop", {"learning_rate": 0.01, "weight_decay": 0.01}),
    # centered: eps 1e-2 (update-rules.md: the centered denominator amplifies rounding)
    "rmsprop_centered": ("rmsprop", {"learning_rate": 0.01, "centered": True, "eps": 1e-2}),
    "rmsprop_momentum": ("rmsprop", {"learning_rate": 0.01, "momentum": 0.5}),
    "rmsprop_centered_momentum": ("rmsprop", {"learning_rate": 0.01, "centered": True,
                                              "momentum": 0.5, "eps": 1e-2}),
    "adadelta": ("adadelta", {"weight_decay": 0.01}),
    "adam": ("adam", {"learning_rate": 0.05, "weight_decay": 0.01}),
    "adam_amsgrad": ("adam", {"learning_rate": 0.05, "amsgrad": True}),
    "adamax": ("adamax", {"learning_rate": 0.05, "weight_decay": 0.01}),
    "nadam": ("nadam", {"learning_rate": 0.05, "weight_decay": 0.01, "momentum_decay": 0.01}),
    "radam": ("radam", {"learning_rate": 0.05, "weight_decay": 0.01,
                        "decoupled_weight_decay": True, "maximize": True}),
}  # fmt: skip
# extra cases: same kernel, other coefficient paths
EXTRA = {"adamw": ("adamw", {"learning_rate": 0.05}),
         "sgd-schedule": ("sgd", {"learning_rate": 0.05,
                                  "schedule": fastopt.schedules.cosine(STEPS)})}  # fmt: skip
KEYS = [key for key, _ in KERNEL_TABLE]
TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-14}, np.float32: {"rtol": 1e-5, "atol": 1e-6}}


def test_every_kernel_variant_has_a_config():
    assert set(CONFIGS) == set(KEYS)
    for key, (method, opts) in CONFIGS.items():
        assert fastopt.optimizer(method, **opts).key == key


nc = None  # numba.cuda once a device test asked for it (a module global: see _quad_grad_kernel)


def cuda():
    global nc
    nc = _device.require_cuda()
    return nc


def grad_at(x, t):
    """A gradient that changes sign along the run (exercises rprop's branches)."""
    i = np.arange(x.shape[0])
    return (x - 0.3 + 0.5 * np.sin(0.7 * i + 1.3 * t)).astype(x.dtype)


# --------------------------------------------------------------------------
# No device needed: detection, import hygiene, errors
# --------------------------------------------------------------------------


class FakeCAI:
    """An object that claims to be a CUDA array (what CuPy or torch look like)."""

    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f8", "data": (0, False),
                                "version": 3, "strides": None}  # fmt: skip


class RaisingCAI:
    """A CPU torch tensor: the class has the property, the instance raises."""

    @property
    def __cuda_array_interface__(self):
        raise TypeError("not a CUDA tensor")


def test_is_device_array():
    assert not _device.is_device_array(np.zeros(3))
    assert not _device.is_device_array([1.0, 2.0])
    assert not _device.is_device_array(RaisingCAI())
    assert _device.is_device_array(FakeCAI())


def test_import_fastopt_imports_no_cuda():
    code = textwrap.dedent("""
        import sys, numpy as np, fastopt
        x = np.ones(3)
        opt = fastopt.optimizer("adam")
        opt.step(x, x, opt.init(x))
        fastopt.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
                         options={"maxiter": 3, "device": "cpu"})
        bad = [m for m in sys.modules
               if m == "numba.cuda" or m.startswith(("numba.cuda.", "numba_cuda"))]
        assert not bad, bad
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture
def fresh_status():
    _device.cuda_status.cache_clear()
    yield
    _device.cuda_status.cache_clear()


def test_missing_numba_cuda_is_a_clear_error(monkeypatch, fresh_status):
    real = _device._find_spec
    monkeypatch.setattr(_device, "_find_spec",
                        lambda name: None if name == "numba_cuda" else real(name))  # fmt: skip
    status = _device.cuda_status()
    assert not status.usable and not status.simulator
    assert "numba-cuda" in status.reason and "fastopt[cuda]" in status.reason
    with pytest.raises(_device.CudaUnavailableError, match="numba-cuda, which is not installed"):
        fastopt.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
                         options={"device": "cuda"})  # fmt: skip
    opt = fastopt.optimizer("adam")
    with pytest.raises(_device.CudaUnavailableError, match="numba-cuda"):
        opt.init(FakeCAI())
    with pytest.raises(_device.CudaUnavailableError, match="numba-cuda"):
        fastopt.minimize(lambda x: 0.0, FakeCAI(), jac=lambda x: x)


def test_numba_cuda_import_failure_is_a_clear_error(monkeypatch, fresh_status):
    import numba

    monkeypatch.setattr(_device, "_find_spec", lambda name: object())
    monkeypatch.delattr(numba, "cuda", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # import numba.cuda -> ImportError
    status = _device.cuda_status()
    assert not status.usable
    assert status.reason.startswith("numba-cuda is installed but cannot be imported")


@pytest.mark.skipif(STATUS.usable, reason="a CUDA device is usable here")
def test_no_gpu_is_a_clear_error():
    assert not STATUS.simulator
    assert STATUS.reason  # e.g. "no usable CUDA driver: CUDA driver library cannot be found."
    with pytest.raises(_device.CudaUnavailableError, match="no usable CUDA GPU: "):
        _device.require_cuda()
    with pytest.raises(_device.CudaUnavailableError, match=re.escape(STATUS.reason)):
        fastopt.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
                         options={"device": "cuda"})  # fmt: skip


def test_cpu_device_option_and_bad_device_value():
    opts = {"device": "cpu", "host_result": True, "maxiter": 2}
    res = fastopt.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x, options=opts)
    assert isinstance(res.x, np.ndarray) and res.nit == 2
    with pytest.raises(ValueError, match="Invalid device value: 'gpu'"):
        fastopt.minimize(lambda x: x @ x, np.ones(3), jac=lambda x: 2 * x,
                         options={"device": "gpu"})  # fmt: skip


# --------------------------------------------------------------------------
# The float32 kernels compile to float32-only PTX (libNVVM, no GPU needed)
# --------------------------------------------------------------------------


def _toolkit_paths(cp):
    """numba-cuda's toolkit paths from CUDA_HOME when it cannot find NVRTC itself."""
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda",
             *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]  # fmt: skip
    for home in filter(None, homes):
        nvvm = next(iter(glob.glob(f"{home}/lib*/libnvvm.so*")
                         + glob.glob(f"{home}/nvvm/lib*/libnvvm.so*")), None)  # fmt: skip
        libdevice = next(iter(glob.glob(f"{home}/nvvm/libdevice/libdevice*.bc")), None)
        if nvvm and libdevice:
            t = cp._env_path_tuple
            lib = os.path.dirname(nvvm)
            return {"nvrtc": t("CUDA_HOME", None), "nvvm": t("CUDA_HOME", nvvm),
                    "libdevice": t("CUDA_HOME", libdevice), "cudalib_dir": t("CUDA_HOME", lib),
                    "static_cudalib_dir": t("CUDA_HOME", lib),
                    "include_dir": t("CUDA_HOME", f"{home}/include")}  # fmt: skip
    return None


@pytest.fixture(scope="module")
def compile_ptx():
    """``compile_ptx(fn, sig) -> str`` for compute capability 8.0, or skip with the reason."""
    if ON_SIM:
        pytest.skip("the simulator has no compile_ptx; the PTX test runs in the main process")
    try:
        cuda = _device.import_cuda()
    except _device.CudaUnavailableError as e:
        pytest.skip(f"compile_ptx unavailable: {e}")
    mp = pytest.MonkeyPatch()
    if not STATUS.usable:
        # No GPU: compiling a call to a device function asks the current device for
        # its compute capability, and numba-cuda asks NVRTC which ones exist.
        import numba.cuda.dispatcher as dispatcher
        from numba.cuda import config
        from numba.cuda import cuda_paths as cp

        mp.setattr(dispatcher, "get_current_device",
                   lambda: SimpleNamespace(compute_capability=(8, 0)))  # fmt: skip
        mp.setattr(config, "FORCE_CUDA_CC", (8, 0))
        try:
            cp.get_cuda_paths()
        except Exception as e:  # NVRTC missing: point numba-cuda at the toolkit's libNVVM
            paths = _toolkit_paths(cp)
            if paths is None:
                mp.undo()
                pytest.skip(f"compile_ptx unavailable: no libNVVM/libdevice found ({e}); "
                            "set CUDA_HOME")  # fmt: skip
            mp.setattr(cp.get_cuda_paths, "_cached_result", paths, raising=False)
    from fastopt.kernels import cuda as kc

    def compile_(fn, sig):
        return cuda.compile_ptx(fn, sig, cc=(8, 0))[0]

    try:
        compile_(kc.check_source(_nbtype(np.float32), True),
                 _check_sig(np.float32))  # fmt: skip
    except Exception as e:
        mp.undo()
        pytest.skip(f"compile_ptx unavailable: {type(e).__name__}: {str(e)[:300]}")
    yield SimpleNamespace(compile=compile_, kc=kc)
    mp.undo()


def _nbtype(dtype):
    from numba.np.numpy_support import from_dtype

    return from_dtype(np.dtype(dtype))


def _check_sig(dtype):
    from numba import types

    t = _nbtype(dtype)
    return (types.Array(t, 1, "C"), types.Array(t, 1, "C"), types.Array(t, 2, "C"), types.int64)


F64 = re.compile(r"^\s*(?:@%p\d+\s+)?([a-z][a-z0-9_.]*\.f64\b[^;]*)", re.M)


@pytest.mark.parametrize("key", KEYS)
def test_float32_step_kernel_ptx_has_no_float64(compile_ptx, key):
    from numba import types

    f32 = types.float32
    sig = (types.Array(f32, 1, "C"), types.Array(f32, 1, "C"), types.Array(f32, 2, "C"),
           types.UniTuple(f32, 12))  # fmt: skip
    ptx = compile_ptx.compile(compile_ptx.kc.step_source(KEYS.index(key)), sig)
    assert ".f32" in ptx  # it did compile the arithmetic
    bad = sorted(set(F64.findall(ptx)))
    assert not bad and "cvt.f64.f32" not in ptx, bad[:10]


def test_float32_check_kernel_ptx_has_no_float64(compile_ptx):
    ptx = compile_ptx.compile(compile_ptx.kc.check_source(_nbtype(np.float32), True),
                              _check_sig(np.float32))  # fmt: skip
    assert "shfl.sync" in ptx and "atom" in ptx
    assert not F64.findall(ptx), sorted(set(F64.findall(ptx)))[:10]


# --------------------------------------------------------------------------
# The simulator suite, from a plain pytest run without a GPU
# --------------------------------------------------------------------------


@pytest.mark.skipif(STATUS.usable, reason="device tests already run in this process")
@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
    reason=f"already under NUMBA_ENABLE_CUDASIM=1 ({STATUS.reason})",
)
@pytest.mark.skipif(
    _device._find_spec("numba_cuda") is None,
    reason="numba-cuda is not installed (the cuda extra): no simulator",
)
def test_simulator_suite():
    """Run this file under ``NUMBA_ENABLE_CUDASIM=1`` (numba reads it at import)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEsx", __file__],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 40, out[-3000:]


# --------------------------------------------------------------------------
# Device tests (simulator or GPU)
# --------------------------------------------------------------------------


def _opt(key):
    method, opts = {**CONFIGS, **EXTRA}[key]
    return fastopt.optimizer(method, **opts)


@needs_device
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("key", KEYS + list(EXTRA))
def test_step_matches_cpu(key, dtype):
    cu = cuda()
    opt = _opt(key)
    x = np.random.default_rng(KEYS.index(key) if key in KEYS else 99).normal(size=N)
    x = x.astype(dtype)
    xd = cu.to_device(x)
    s, sd = opt.init(x), opt.init(xd)
    assert _device.is_numba_device_array(sd.slots)
    for t in range(STEPS):
        g = grad_at(x, t)
        value = float((7 * t) % 5)  # goes up and down: irprop+ backtracks sometimes
        s = opt.step(x, g, s, value=value)
        sd = opt.step(xd, cu.to_device(g), sd, value=value)
    assert sd.count == s.count == STEPS
    np.testing.assert_allclose(xd.copy_to_host(), x, **TOL[dtype])
    d, dd = s.to_dict(), sd.to_dict()
    assert d.keys() == dd.keys()
    for name in opt.slot_names:
        assert isinstance(dd[name], np.ndarray) and dd[name].dtype == dtype
        np.testing.assert_allclose(dd[name], d[name], **TOL[dtype], err_msg=name)


@needs_device
@pytest.mark.parametrize("threads, max_blocks", [(32, 1), (32, 5), (64, 2)])
def test_any_launch_shape_gives_the_same_step(threads, max_blocks):
    # grid-stride loops: one block looping, more threads than elements, wider blocks
    cu = cuda()
    from fastopt.kernels import cuda as kc

    saved = kc.launch_config()
    try:
        kc.launch_config(threads=threads, max_blocks=max_blocks)
        opt = fastopt.optimizer("rmsprop", learning_rate=0.01, centered=True, momentum=0.5)
        x = np.linspace(-1, 1, N)
        xd = cu.to_device(x)
        s, sd = opt.init(x), opt.init(xd)
        for t in range(3):
            g = grad_at(x, t)
            s = opt.step(x, g, s)
            sd = opt.step(xd, cu.to_device(g), sd)
        np.testing.assert_allclose(xd.copy_to_host(), x, rtol=1e-12, atol=1e-14)
        checks = kc.Checks(N, np.float64)
        g = cu.to_device(-np.arange(N, dtype=np.float64))
        assert checks(xd, g) == (False, False, N - 1.0)
        g[N - 1] = np.nan
        assert checks(xd, g)[:2] == (False, True)
        assert checks(g, xd)[:2] == (True, False)  # rows alternate: no stale flags
        assert checks(xd, xd) == (False, False, float(np.abs(x).max()))
    finally:
        kc.THREADS, kc.MAX_BLOCKS = saved
    with pytest.raises(ValueError, match="multiple of 32"):
        kc.launch_config(threads=48)


@needs_device
def test_host_gradient_is_uploaded():
    cu = cuda()
    opt = fastopt.optimizer("adam", learning_rate=0.1)
    x = np.linspace(-1, 1, N)
    xa, xb = cu.to_device(x), cu.to_device(x)
    sa, sb = opt.init(xa), opt.init(xb)
    for t in range(3):
        g = grad_at(x, t)
        sa = opt.step(xa, g, sa)
        sb = opt.step(xb, cu.to_device(g), sb)
    np.testing.assert_array_equal(xa.copy_to_host(), xb.copy_to_host())
    # a float64 device gradient for a float32 x is cast on the device: the
    # same step as with the gradient cast on the host.  (Compared on the
    # device: a GPU contracts sqrt(v) * c + eps into a fused multiply-add and
    # the CPU kernel does not, which an H200 showed as up to 16 ulps of x
    # after the cancellation in x - lr * ratio.)
    x32, ref = cu.to_device(x.astype(np.float32)), cu.to_device(x.astype(np.float32))
    opt.step(x32, cu.to_device(grad_at(x, 0)), opt.init(x32))
    opt.step(ref, cu.to_device(grad_at(x, 0).astype(np.float32)), opt.init(ref))
    np.testing.assert_array_equal(x32.copy_to_host(), ref.copy_to_host())
    assert x32.copy_to_host().dtype == np.float32


@needs_device
@pytest.mark.parametrize("key", ["adam", "rprop+", "sgd", "nadam"])
def test_state_round_trip(key):
    cu = cuda()
    opt = _opt(key)
    x = np.linspace(-1, 1, N)
    xd = cu.to_device(x)
    sd = opt.init(xd)
    for t in range(3):
        sd = opt.step(xd, cu.to_device(grad_at(xd.copy_to_host(), t)), sd, value=float(t % 2))
    d = sd.to_dict()
    assert all(isinstance(v, np.ndarray) for k, v in d.items() if k in opt.slot_names)
    # continue three ways: the live device state, the restored device state, the CPU
    xr = cu.to_device(xd.copy_to_host())
    sr = opt.state_from_dict(d, like=xr)
    assert _device.is_numba_device_array(sr.slots) and sr.count == 3
    xc = xd.copy_to_host()
    sc = opt.state_from_dict(d)
    for t in range(3, 6):
        g = grad_at(xc, t)
        sd = opt.step(xd, cu.to_device(g), sd, value=float(t % 2))
        sr = opt.step(xr, cu.to_device(g), sr, value=float(t % 2))
        sc = opt.step(xc, g, sc, value=float(t % 2))
    np.testing.assert_array_equal(xr.copy_to_host(), xd.copy_to_host())
    np.testing.assert_allclose(xd.copy_to_host(), xc, rtol=1e-12, atol=1e-14)
    for name in opt.slot_names:
        np.testing.assert_array_equal(sr[name].copy_to_host(), sd[name].copy_to_host())
    assert sr.scalars == sd.scalars == sc.scalars  # NAdam's mu_product, host-side float64
    # a float64 dict restored for a float32 x is cast on upload
    s32 = opt.state_from_dict(d, like=cu.to_device(x.astype(np.float32)))
    assert s32.slots.dtype == np.float32


@needs_device
def test_step_errors():
    cu = cuda()
    opt = fastopt.optimizer("adam")
    xd = cu.to_device(np.zeros(N))
    with pytest.raises(ValueError, match="state is on the host"):
        opt.step(xd, np.zeros(N), opt.init(np.zeros(N)))
    with pytest.raises(ValueError, match="must have shape"):
        opt.step(xd, cu.to_device(np.zeros(N + 1)), opt.init(xd))
    with pytest.raises(ValueError, match="same length"):
        opt.step(xd, cu.to_device(np.zeros(N)), opt.init(cu.to_device(np.zeros(N + 1))))
    with pytest.raises(ValueError, match="1-D"):
        opt.init(cu.to_device(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="float32 or float64"):
        opt.init(cu.to_device(np.zeros(3, dtype=np.int64)))
    rp = fastopt.optimizer("rprop", variant="irprop+")
    with pytest.raises(ValueError, match="needs the objective"):
        rp.step(xd, cu.to_device(np.zeros(N)), rp.init(xd))
    with pytest.raises(ValueError, match="shape"):
        opt.state_from_dict(opt.init(np.zeros(3)).to_dict(), like=xd)
    # issue 11.4 on the device: a state of another rule or dtype is refused
    with pytest.raises(ValueError, match="state is of 'sgd'"):
        opt.step(xd, cu.to_device(np.zeros(N)), fastopt.optimizer("sgd").init(xd))
    with pytest.raises(ValueError, match="the state is float32"):
        opt.step(xd, cu.to_device(np.zeros(N)), opt.init(cu.to_device(np.zeros(N, np.float32))))


# --- minimize on the device ----------------------------------------------------------

A_D = np.linspace(0.5, 3.0, N)
B_D = np.cos(np.arange(N))


def quad_f(x):
    return 0.5 * float(np.sum(A_D * x * x)) - float(B_D @ x)


def quad_g(x):
    return A_D * x - B_D


def test_quadratic_gradient():
    from scipy.optimize import check_grad

    assert check_grad(quad_f, quad_g, np.linspace(-1, 1, N)) < 1e-5


# Non-finite values are switched on by the point, not by a call count, so the
# CPU and device runs agree however many times each driver calls fun.
BAD_AT = 0.45  # fun -> NaN (or jac -> inf) once x[0] > BAD_AT


class DeviceQuad:
    """The quadratic with ``jac`` computed by a ``@cuda.jit`` kernel (device in, device out)."""

    def __init__(self, dtype=np.float64, nan_f=False, inf_g=False):
        cu = cuda()
        self.a, self.b = cu.to_device(A_D.astype(dtype)), cu.to_device(B_D.astype(dtype))
        self.kernel = cu.jit(_quad_grad_kernel)
        self.calls = 0
        self.nan_f, self.inf_g = nan_f, inf_g

    def fun(self, x):
        self.calls += 1
        xh = x.copy_to_host()
        if self.nan_f and xh[0] > BAD_AT:
            return math.nan
        return quad_f(xh.astype(np.float64))

    def jac(self, x):
        g = cuda().device_array(x.shape[0], dtype=x.dtype)
        self.kernel[2, 32](x, self.a, self.b, g)
        if self.inf_g and x[0] > BAD_AT:  # x[0]: one element read from the device
            g[3] = np.inf  # and one written
        return g


def _quad_grad_kernel(x, a, b, g):
    # `nc` is the numba.cuda module global: the simulator swaps it for its fake module
    for i in range(nc.grid(1), x.shape[0], nc.gridsize(1)):
        g[i] = a[i] * x[i] - b[i]


def _cpu_fun(dtype, nan_f=False, inf_g=False):
    def fun(x):
        if nan_f and x[0] > BAD_AT:
            return math.nan
        return quad_f(x.astype(np.float64))

    def jac(x):
        g = quad_g(x).astype(dtype)
        if inf_g and x[0] > BAD_AT:
            g[3] = np.inf
        return g

    return fun, jac


def _same_result(rd, rc, dtype=np.float64):
    def summary(r):
        return r.status, r.nit, r.njev, r.success, r.message

    assert summary(rd) == summary(rc)
    xd = rd.x if isinstance(rd.x, np.ndarray) else rd.x.copy_to_host()
    jd = rd.jac if isinstance(rd.jac, np.ndarray) else rd.jac.copy_to_host()
    assert xd.dtype == dtype
    np.testing.assert_allclose(xd, rc.x, **TOL[dtype])
    np.testing.assert_allclose(jd, rc.jac, **TOL[dtype])
    assert rd.fun == pytest.approx(rc.fun, rel=1e-12 if dtype == np.float64 else 1e-5)


@needs_device
@pytest.mark.parametrize("method, options", [
    ("adam", {"learning_rate": 0.1}),
    ("rprop", {"variant": "irprop+"}),
    ("nag", {"learning_rate": 0.05, "schedule": fastopt.schedules.cosine(30)}),
    ("rmsprop", {"learning_rate": 0.05, "gtol": 0.5}),  # stops on gtol
])  # fmt: skip
def test_minimize_device_x0_matches_cpu(method, options):
    cu = cuda()
    x0 = np.zeros(N)
    q = DeviceQuad()
    opts = {"maxiter": 30, **options}
    rd = fastopt.minimize(q.fun, cu.to_device(x0), jac=q.jac, method=method, options=opts)
    f, g = _cpu_fun(np.float64)
    rc = fastopt.minimize(f, x0, jac=g, method=method, options=opts)
    assert _device.is_numba_device_array(rd.x) and _device.is_numba_device_array(rd.jac)
    assert rd.nfev == rd.njev == q.calls == rd.nit + 1  # every evaluation counted, once
    _same_result(rd, rc)


@needs_device
def test_minimize_float32_bounds_host_jac():
    # numpy x0 + device="cuda": jac returns host arrays (uploaded); res.x comes back as numpy
    cu = cuda()
    x0 = np.zeros(N, dtype=np.float32)
    bounds = [(-0.2, 0.25)] * N
    f, g = _cpu_fun(np.float32)
    opts = {"maxiter": 25, "learning_rate": 0.1}
    rd = fastopt.minimize(
        lambda x: f(x.copy_to_host()), x0, jac=lambda x: g(x.copy_to_host()), method="adamax",
        bounds=bounds, options={**opts, "device": "cuda"},
    )  # fmt: skip
    rc = fastopt.minimize(f, x0, jac=g, method="adamax", bounds=bounds, options=opts)
    assert isinstance(rd.x, np.ndarray) and isinstance(rd.jac, np.ndarray)
    assert rd.x.max() <= np.float32(0.25) and rd.x.min() >= np.float32(-0.2)
    _same_result(rd, rc, np.float32)
    # host_result with a device x0
    q = DeviceQuad(np.float32)
    rh = fastopt.minimize(q.fun, cu.to_device(x0), jac=q.jac, method="adamax", bounds=bounds,
                          options={**opts, "host_result": True})  # fmt: skip
    assert isinstance(rh.x, np.ndarray) and rh.x.dtype == np.float32
    np.testing.assert_allclose(rh.x, rc.x, **TOL[np.float32])


@needs_device
@pytest.mark.parametrize("bad, expect", [
    ({"nan_f": True}, NONFINITE_F),
    ({"inf_g": True}, NONFINITE_G),
])  # fmt: skip
def test_minimize_nonfinite_f_g_matches_cpu(bad, expect):
    cu = cuda()
    x0 = np.zeros(N)
    q = DeviceQuad(**bad)
    opts = {"maxiter": 30, "learning_rate": 0.1}
    rd = fastopt.minimize(q.fun, cu.to_device(x0), jac=q.jac, method="adam", options=opts)
    f, g = _cpu_fun(np.float64, **bad)
    rc = fastopt.minimize(f, x0, jac=g, method="adam", options=opts)
    assert rd.status == rc.status == expect and not rd.success
    assert rd.nit == rc.nit >= 3  # the rejected update does not count
    xd = rd.x.copy_to_host()
    np.testing.assert_allclose(xd, rc.x, rtol=1e-12, atol=1e-14)
    assert np.all(np.isfinite(xd)) and xd[0] <= BAD_AT and math.isfinite(rd.fun)
    np.testing.assert_allclose(rd.jac.copy_to_host(), quad_g(xd), rtol=1e-12, atol=1e-14)


@needs_device
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # simulator: NumPy
def test_minimize_nonfinite_x_keeps_last_finite_iterate():
    cu = cuda()
    x0 = np.zeros(N)

    def jac_host(x):
        return np.full(x.shape[0], 1e308)

    def fun_dev(x):
        return 0.0

    def jac_dev(x):
        return cu.to_device(jac_host(x))

    rd = fastopt.minimize(fun_dev, cu.to_device(x0), jac=jac_dev, method="sgd",
                          options={"learning_rate": 10.0, "maxiter": 5})  # fmt: skip
    rc = fastopt.minimize(lambda x: 0.0, x0, jac=jac_host, method="sgd",
                          options={"learning_rate": 10.0, "maxiter": 5})  # fmt: skip
    assert rd.status == rc.status == NONFINITE_X
    assert rd.nit == rc.nit == 0  # the rejected step does not count
    np.testing.assert_array_equal(rd.x.copy_to_host(), rc.x)
    np.testing.assert_array_equal(rd.x.copy_to_host(), x0)


@needs_device
def test_minimize_callback_return_all():
    cu = cuda()
    x0 = np.zeros(N)
    q = DeviceQuad()
    seen = []

    def cb(intermediate_result):
        seen.append(intermediate_result)
        if intermediate_result.nit == 4:
            raise StopIteration

    rd = fastopt.minimize(q.fun, cu.to_device(x0), jac=q.jac, method="momentum", callback=cb,
                          options={"return_all": True, "learning_rate": 0.1})  # fmt: skip
    f, g = _cpu_fun(np.float64)
    rc = fastopt.minimize(f, x0, jac=g, method="momentum", options={"maxiter": 4,
                          "return_all": True, "learning_rate": 0.1})  # fmt: skip
    assert rd.status == CALLBACK and rc.status == MAXITER and rd.nit == rc.nit == 4
    assert [r.nit for r in seen] == [1, 2, 3, 4]
    assert _device.is_numba_device_array(seen[-1].x)
    np.testing.assert_allclose(seen[-1].x.copy_to_host(), rc.x, rtol=1e-12, atol=1e-14)
    assert len(rd.allvecs) == len(rc.allvecs) == 5
    for a, b in zip(rd.allvecs, rc.allvecs, strict=True):
        np.testing.assert_allclose(a.copy_to_host(), b, rtol=1e-12, atol=1e-14)
    xs = []
    fastopt.minimize(q.fun, cu.to_device(x0), jac=q.jac, method="sgd", callback=xs.append,
                     options={"maxiter": 2})  # fmt: skip
    assert len(xs) == 2 and _device.is_numba_device_array(xs[0])


@needs_device
def test_minimize_device_errors():
    cu = cuda()
    x0 = cu.to_device(np.zeros(N))
    q = DeviceQuad()
    with pytest.raises(ValueError, match="minibatch mode"):
        fastopt.minimize(q.fun, x0, jac=q.jac, options={"batch_size": 10})
    with pytest.raises(ValueError, match="analytic gradient"):
        fastopt.minimize(q.fun, x0)
    with pytest.raises(ValueError, match="device='cpu' but x0 is a device array"):
        fastopt.minimize(q.fun, x0, jac=q.jac, options={"device": "cpu"})
    with pytest.raises(ValueError, match="Invalid device value"):
        fastopt.minimize(q.fun, x0, jac=q.jac, options={"device": "gpu"})
    with pytest.raises(ValueError, match="must have shape"):
        fastopt.minimize(q.fun, x0, jac=lambda x: np.zeros(3))
    with pytest.raises(ValueError, match="must return a scalar"):
        fastopt.minimize(lambda x: np.zeros(3), x0, jac=q.jac)
    second = [m for m in fastopt.METHODS
              if fastopt._methods.get_method(m).kind != "first-order"]  # fmt: skip
    if second:
        with pytest.raises(ValueError, match="does not run on the device"):
            fastopt.minimize(q.fun, x0, jac=q.jac, method=second[0])
    with pytest.raises(ValueError, match="x0 must be finite"):
        fastopt.minimize(q.fun, cu.to_device(np.array([0.0, np.nan])), jac=q.jac)
    assert np.all(x0.copy_to_host() == 0)  # x0 itself is never modified


@needs_device
def test_simulator_is_reported():
    if ON_SIM:
        assert "simulator" in STATUS.reason
    else:
        assert "simulator" not in STATUS.reason and STATUS.reason.startswith("CUDA device")


# --- real GPU only: other libraries' arrays ------------------------------------------


@needs_gpu
@pytest.mark.parametrize("lib", ["cupy", "torch"])
def test_cuda_array_interface_round_trip(lib):
    mod = pytest.importorskip(lib)
    if lib == "torch" and not mod.cuda.is_available():
        pytest.skip("torch without CUDA")
    x0 = np.zeros(N)
    if lib == "cupy":
        xa = mod.asarray(x0)
        a, b = mod.asarray(A_D), mod.asarray(B_D)
    else:
        xa = mod.as_tensor(x0, device="cuda")
        a, b = mod.as_tensor(A_D, device="cuda"), mod.as_tensor(B_D, device="cuda")

    def fun(x):
        return float((0.5 * (a * x * x).sum() - (b * x).sum()).item())

    def jac(x):
        return a * x - b

    opts = {"maxiter": 30, "learning_rate": 0.1}
    rd = fastopt.minimize(fun, xa, jac=jac, method="adam", options=opts)
    f, g = _cpu_fun(np.float64)
    rc = fastopt.minimize(f, x0, jac=g, method="adam", options=opts)
    assert type(rd.x) is type(xa)
    host = rd.x.get() if lib == "cupy" else rd.x.cpu().numpy()
    np.testing.assert_allclose(host, rc.x, rtol=1e-10, atol=1e-12)
    # the optimizer API on the library's own array: updated in place
    opt = fastopt.optimizer("adam", learning_rate=0.1)
    s = opt.init(xa)
    opt.step(xa, jac(xa), s)
    assert float((xa * xa).sum()) > 0


# --- structured params and groups on the device (issue 13.6) ---------------------------


@needs_device
@pytest.mark.parametrize("packed", [False, True], ids=["separate", "packed"])
@pytest.mark.parametrize("key", ["adam", "nadam", "irprop+"])
def test_structured_params_and_groups_on_device(key, packed):
    """Device arrays in a dict, with a group: the same steps as the host (to 1e-12).

    Packed (fastopt.pack of device arrays): one launch per run, one run per
    stretch of a group; separate arrays: one launch per array.
    """
    cu = cuda()
    method, opts = CONFIGS[key]
    opt = fastopt.optimizer(method, groups=[{"params": ["b"], "lr": 0.02}], **opts)
    rng = np.random.default_rng(5)
    host = {"W": rng.normal(size=(6, 5)), "b": rng.normal(size=5), "v": rng.normal(size=7)}
    dev = {k: cu.to_device(v.copy()) for k, v in host.items()}
    if packed:
        dev = fastopt.pack(dev)
        assert fastopt.packed_buffer(dev) is not None
    s, sd = opt.init(host), opt.init(dev)
    assert sd.layout.device and len(sd.layout.runs) == 3  # W | b (its group) | v
    # without groups a packed model is one launch per step
    assert len(fastopt.optimizer(method, **opts).init(dev).layout.runs) == (1 if packed else 3)
    for t in range(6):
        g = {k: grad_at(v.ravel(), t).reshape(v.shape) for k, v in host.items()}
        gd = {k: cu.to_device(v) for k, v in g.items()}
        value = float((7 * t) % 5)
        s = opt.step(host, g, s, value=value)
        sd = opt.step(dev, gd if t % 2 else np.concatenate([v.ravel() for v in g.values()]),
                      sd, value=value)  # fmt: skip
    for k in host:
        np.testing.assert_allclose(dev[k].copy_to_host(), host[k], rtol=1e-12, atol=1e-14)
    d, dd = s.to_dict(), sd.to_dict()
    for name in opt.slot_names:
        np.testing.assert_allclose(dd[name], d[name], rtol=1e-12, atol=1e-14, err_msg=name)
    assert sd.scalars == s.scalars
    # the device state restores onto device params
    sr = opt.state_from_dict(dd, like=dev)
    assert _device.is_numba_device_array(sr.slots) and sr.layout.device
