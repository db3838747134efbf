"""fastopt: Numba-accelerated optimizers behind a scipy-style ``minimize``.

>>> import fastopt
>>> "adam" in fastopt.METHODS
True
"""

from . import schedules
from ._many import minimize_many
from ._methods import METHODS
from ._minimize import as_scipy_method, minimize
from .optim import Optimizer, OptState, optimizer

__version__ = "0.1.0"

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
]
