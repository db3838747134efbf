"""fastopt: Numba-accelerated optimizers behind a scipy-style ``minimize``.

>>> import fastopt
>>> "adam" in fastopt.METHODS
True
"""

from . import schedules
from ._minimize import METHODS, as_scipy_method, minimize
from .optim import Optimizer, OptState, optimizer
from ._params import pack, packed_buffer

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "Optimizer",
    "OptState",
    "as_scipy_method",
    "minimize",
    "optimizer",
    "schedules",
    "__version__",
    "pack",
    "packed_buffer",
]
