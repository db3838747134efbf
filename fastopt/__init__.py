"""fastopt: Numba-accelerated optimizers behind a scipy-style ``minimize``.

>>> import fastopt
>>> "adam" in fastopt.METHODS
True
"""

from . import schedules
from ._many import minimize_many
from ._methods import METHODS
from ._minimize import as_scipy_method, minimize
from ._params import pack, packed_buffer
from .optim import Optimizer, OptState, optimizer

__version__ = "0.1.0"

#: submodules loaded on first attribute access (``fastopt.models``), as scipy
#: does: importing them costs time (scikit-learn) that ``import fastopt`` must not
_LAZY_SUBMODULES = ("drivers", "kernels", "models", "rules", "solvers", "testing")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "METHODS",
    "Optimizer",
    "OptState",
    "as_scipy_method",
    "minimize",
    "minimize_many",
    "optimizer",
    "schedules",
    "__version__",
    "pack",
    "packed_buffer",
]
