"""The method registry: every name :func:`fastopt.minimize` accepts, and how to run it.

A registry rather than branches: the front ends (:func:`fastopt.minimize`, the
device driver, the estimators, the showcase) and the tests iterate the same
table.  It sits below both front ends, so neither imports the other.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .drivers.driver import plan_runner, run_first_order
from .optim import Optimizer, make_hyper, warn_if_schedule_unused
from .rules import RULES

#: options every method understands, with their defaults
COMMON = {
    "maxiter": None,
    "gtol": 1e-5,
    "disp": False,
    "return_all": False,
    "batch_size": None,
    "epochs": None,
    "shuffle": True,
    "seed": None,
    "device": None,  # "cuda": see drivers/cuda_loop.py (routed before validation)
    "host_result": False,
}
FIRST_ORDER_ONLY = {"schedule": None, "parallel": False}


@dataclass(frozen=True)
class Method:
    """A registry entry: how to build a method's options and run it."""

    name: str
    kind: str  # "first-order" or "second-order"
    options: Callable  # options dict -> (opts, unknown names)
    run: Callable  # (Objective, opts) -> dict
    default_maxiter: int
    uses_hessp: bool = False
    #: the options ``minimize(tol=...)`` sets, as scipy does for the method
    tol_options: tuple = ("gtol",)
    #: whether the method has a minibatch mode (``batch_size``/``epochs``)
    minibatch: bool = True
    #: ``reusable(opts)``: whether built options may serve more than one run
    #: (a repeated minimize call reuses them, see ``_minimize._Plan``)
    reusable: Callable = lambda opts: True
    #: ``plan_runner(opts, obj)``: a lean ``run(x, args) -> (x, f, g, status,
    #: nit, nfev, njev)`` for repeated runs like ``obj``, or None (then a
    #: repeated call runs ``run`` on a new Objective)
    plan_runner: Callable | None = None

    def check_minibatch(self):
        """Raise ValueError when ``batch_size``/``epochs`` go to a full-batch method.

        Such a method would ignore the batches (issue 11: it ran on the full
        data with ``maxiter = 2**63``).
        """
        if not self.minibatch:
            takes = ", ".join(m for m, e in _REGISTRY.items() if e.kind != "first-order"
                              and e.minibatch)  # fmt: skip
            raise ValueError(
                f"method '{self.name}' is a full-batch method and takes no batch_size or "
                f"epochs; minibatch methods: the first-order rules (e.g. 'adam') and {takes}"
            )


#: built optimizers by (method, options): constructing one costs more than a
#: short compiled run (validation, the rule's derived constants), and
#: minimize is often called in a loop with the same options
_OPTIMIZERS = None


def _first_order_entry(name):
    def options(opts):
        global _OPTIMIZERS
        # the warning's frame, then here, minimize, and the user's call
        warn_if_schedule_unused(name, opts.get("schedule"), stacklevel=4)
        try:
            key = (name, tuple(sorted(opts.items())))
            hash(key)
        except TypeError:  # an unhashable option value: build it every time
            key = None
        if key is not None:
            if _OPTIMIZERS is None:
                from ._user import BoundedCache

                _OPTIMIZERS = BoundedCache(256)
            hit = _OPTIMIZERS.get(key)
            if hit is not None:
                return hit
        out = build(opts)
        if key is not None and reusable(out[0]):  # (never share one with scalar state)
            _OPTIMIZERS[key] = out
        return out

    def build(opts):
        rule_opts = {k: v for k, v in opts.items() if k not in FIRST_ORDER_ONLY}
        rule, hyper, unknown = make_hyper(name, rule_opts, on_unknown="return")
        opt = Optimizer(
            name, rule, hyper, schedule=opts.get("schedule"), parallel=opts.get("parallel", False)
        )
        return opt, unknown

    def reusable(opts):
        # a rule with scalar state (NAdam's mu_product) carries it in the
        # optimizer's h during a run
        return not opts._scalar_idx

    return Method(name, "first-order", options, run_first_order, default_maxiter=1000,
                  reusable=reusable, plan_runner=plan_runner)  # fmt: skip


def _solver_entry(name, module):
    def options(opts):
        fields = module.Options._fields
        known = {k: v for k, v in opts.items() if k in fields}
        unknown = [k for k in opts if k not in fields]
        o = module.Options(**known)
        module.validate(o)
        return o, unknown

    return Method(
        name, "second-order", options, module.run,
        default_maxiter=getattr(module, "DEFAULT_MAXITER", 1000),
        uses_hessp=getattr(module, "USES_HESSP", True),
        tol_options=getattr(module, "TOL_OPTIONS", ("gtol",)),
        minibatch=getattr(module, "MINIBATCH", False),
    )  # fmt: skip


def _build_registry():
    reg = {name: _first_order_entry(name) for name in RULES}
    aliases = {}
    try:
        from .solvers import SOLVERS
    except ImportError:  # pragma: no cover - solvers land with issue 3
        SOLVERS = {}
    for name, module in SOLVERS.items():
        reg[name] = _solver_entry(name, module)
        for alias in getattr(module, "ALIASES", ()):
            aliases[alias] = name
    return reg, aliases


_REGISTRY, _ALIASES = _build_registry()
#: every method name :func:`minimize` accepts (aliases not included)
METHODS = tuple(_REGISTRY)


def get_method(method):
    """The registry entry of ``method`` (case-insensitive; aliases allowed)."""
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, got {method!r}")
    key = method.lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown method {method!r}; fastopt methods are: {', '.join(METHODS)}"
            + (f" (aliases: {', '.join(_ALIASES)})" if _ALIASES else "")
        )
    return _REGISTRY[key]
