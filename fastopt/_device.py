"""Is a CUDA GPU usable, and if not, why: the one place that decides.

GPU support is optional (style.md item 9): ``import fastopt`` never imports
``numba.cuda``; the CUDA code is imported when a device array or
``device="cuda"`` asks for it, and then either works or raises
:class:`CudaUnavailableError` with the reason:

- numba-cuda is not installed (the ``cuda`` extra: ``pip install "fastopt[cuda]"``);
  numba's own deprecated built-in CUDA target is not used;
- numba-cuda is installed but cannot be imported (e.g. no CUDA Python bindings);
- no CUDA driver, libNVVM missing, or no GPU.

The CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported)
counts as usable, so the device code can be tested without a GPU, but
:func:`cuda_status` says that it is the simulator: ``cuda.is_available()`` is
True under the simulator, so a "real GPU?" question must look at
``ENABLE_CUDASIM`` too.
"""

import functools
import importlib.util
import os
import sys
from typing import NamedTuple

import numpy as np

#: what to install for GPU support
INSTALL_HINT = 'install the "cuda" extra: pip install "fastopt[cuda]" (numba-cuda)'


class CudaUnavailableError(RuntimeError):
    """A CUDA device was asked for but none is usable; the message says why."""


class CudaStatus(NamedTuple):
    """Whether CUDA device code can run in this process, and why (not)."""

    usable: bool
    simulator: bool
    reason: str

    def __bool__(self):
        return self.usable


def _find_spec(name):
    # indirection so tests can simulate a missing numba-cuda
    return importlib.util.find_spec(name)


def simulator_requested():
    """True when numba runs (or will run) CUDA code in its simulator."""
    import numba

    if getattr(numba.config, "ENABLE_CUDASIM", 0):
        return True
    # numba-cuda reads its own copy of the setting when numba.cuda is imported;
    # before that, the environment decides (importing it here would be a side effect)
    cuda_config = sys.modules.get("numba.cuda.core.config")
    if cuda_config is not None:
        return bool(getattr(cuda_config, "ENABLE_CUDASIM", 0))
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def import_cuda():
    """``numba.cuda`` from numba-cuda, without checking for a device.

    Raises :class:`CudaUnavailableError` if numba-cuda is missing or fails to
    import (compiling PTX needs the module, not a GPU).
    """
    if _find_spec("numba_cuda") is None:
        raise CudaUnavailableError(f"CUDA support needs numba-cuda, which is not installed; "
                                   f"{INSTALL_HINT}")  # fmt: skip
    try:
        from numba import cuda
    except ImportError as e:
        raise CudaUnavailableError(f"numba-cuda is installed but cannot be imported: {e}") from e
    return cuda


@functools.cache
def cuda_status():
    """A :class:`CudaStatus`: usable or not, simulator or not, and the reason.

    Cached for the process (the answer cannot change once the driver has been
    initialised); tests call ``cuda_status.cache_clear()``.
    """
    try:
        cuda = import_cuda()
    except CudaUnavailableError as e:
        return CudaStatus(False, False, str(e))
    if simulator_requested():
        return CudaStatus(True, True, "the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): every GPU "
                          "thread runs as a Python thread; for tests, not for speed")  # fmt: skip
    err = cuda.cuda_error()
    if err:
        first = next((line for line in str(err).splitlines() if line.strip()), str(err))
        return CudaStatus(False, False, f"no usable CUDA driver: {first.strip()}")
    try:
        n = len(cuda.gpus)
    except Exception as e:  # CudaSupportError and friends: report, never crash
        return CudaStatus(False, False, f"CUDA driver error while listing GPUs: {e}")
    if n == 0:
        return CudaStatus(False, False, "the CUDA driver found no GPU")
    if not cuda.is_available():
        return CudaStatus(False, False, "a GPU is present but libNVVM (the CUDA compiler "
                          "library) was not found: install the CUDA toolkit or the "
                          "nvidia-nvvm wheel, or set CUDA_HOME")  # fmt: skip
    name = cuda.get_current_device().name
    if isinstance(name, bytes):
        name = name.decode()
    return CudaStatus(True, False, f"CUDA device 0: {name}")


def require_cuda():
    """``numba.cuda`` if device code can run here, else :class:`CudaUnavailableError`."""
    status = cuda_status()
    if not status.usable:
        raise CudaUnavailableError(f"no usable CUDA GPU: {status.reason}")
    return import_cuda()


def is_numba_device_array(x):
    """A numba device array (real, or the simulator's stand-in)."""
    return bool(getattr(type(x), "__cuda_ndarray__", False))


def is_device_array(x):
    """True for numba device arrays and anything exposing ``__cuda_array_interface__``.

    Cheap and import-free: NumPy arrays answer False at once, and a CPU
    torch tensor (whose interface property raises) answers False.
    """
    t = type(x)
    if t is np.ndarray:
        return False
    if getattr(t, "__cuda_ndarray__", False):
        return True
    if not hasattr(t, "__cuda_array_interface__"):
        return False
    try:
        x.__cuda_array_interface__  # noqa: B018 - the property may raise (CPU tensors)
    except Exception:
        return False
    return True
