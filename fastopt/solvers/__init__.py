"""Second-order solvers: scaled conjugate gradient, L-BFGS, Hessian-free, AdaHessian.

Each module defines ``Options`` (a NamedTuple of the method's own options),
``validate(opts)``, ``run(obj, opts) -> dict`` and ``ALIASES``.
:data:`SOLVERS` maps each method name to its module, for
:func:`fastopt.minimize`'s registry; :data:`ALIASES` maps aliases to names.
Importing compiles nothing: the compiled loops are built on first use.
"""

from . import adahessian, hessian_free, lbfgs, scg

#: method name -> solver module (aliases are in each module's ``ALIASES``)
SOLVERS = {
    "scg": scg,
    "lbfgs": lbfgs,
    "hessian-free": hessian_free,
    "adahessian": adahessian,
}

#: alias -> method name
ALIASES = {alias: name for name, mod in SOLVERS.items() for alias in mod.ALIASES}

__all__ = ["ALIASES", "SOLVERS", "adahessian", "hessian_free", "lbfgs", "scg"]
