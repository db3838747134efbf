"""What every rule module provides, and the helpers they share.

A rule module (``fastopt/rules/adam.py`` ...) holds the math of one update
rule, once, as plain Python that numba compiles for the CPU (``@njit``,
inlined into serial and parallel loops) and for the GPU (``@cuda.jit``
device functions).  It imports no numba.  It defines:

``Hyper``
    a ``NamedTuple`` of the hyperparameters with their defaults (torch.optim's
    defaults and semantics; option names of ``update-rules.md``).
``validate(h)``
    boundary checks; raise ``ValueError`` with torch's wording.
``KERNELS``
    ``{key: Kernel(elem, coeffs, slots)}``: one entry per compiled variant.
``kernel_key(h)``
    which entry of ``KERNELS`` the hyperparameters select.
``slot_init(h)``
    ``{slot: initial value}`` for slots that do not start at zero.

``coeffs(h, t, lr, aux, c)`` fills ``c`` (an array of the parameters' dtype)
with the per-step scalars from the numeric hyperparameters ``h`` (float64
array in ``Hyper`` field order), the step count ``t`` (1 on the first update),
the scheduled learning rate ``lr`` and ``aux``, the sign of the objective's
change since the last step (1.0 up, -1.0 down, 0.0 same or unknown; iRprop+
needs it, and reads it against ``maximize``).  Everything that depends only
on ``t`` is computed here once per step, not per element.

``elem(i, x, g, S, c)`` updates element ``i`` of ``x`` and of the state rows
``S[k, i]`` in place.  It uses only scalar arithmetic, comparisons and
``math.sqrt``; every constant comes from ``c``, so a float32 kernel computes
in float32 (a Python float literal would promote it to float64 on a GPU).
"""

import math
import types
from collections.abc import Callable
from typing import NamedTuple


class Kernel(NamedTuple):
    """One compiled variant of a rule: its element update, coefficients, slots.

    ``helpers`` are scalar-only functions that ``elem`` calls by name; an
    executor compiles them for its target (``bind``).  Branchy per-element
    logic belongs there: in a function that also holds the arrays, numba keeps
    atomic reference counting on every element when the code branches.
    """

    elem: Callable
    coeffs: Callable
    slots: tuple[str, ...]
    helpers: tuple = ()

    def bind(self, compile_helper):
        """``elem`` with its helpers replaced by ``compile_helper(helper)``."""
        if not self.helpers:
            return self.elem
        names = dict(self.elem.__globals__)
        for h in self.helpers:  # in order: a helper may call the ones before it
            names[h.__name__] = compile_helper(_with_globals(h, names))
        return _with_globals(self.elem, names)


def _with_globals(f, names):
    return types.FunctionType(f.__code__, names, f.__name__, f.__defaults__, f.__closure__)


#: the coefficient every rule sets to -1.0 with ``maximize=True`` (else 1.0):
#: ``elem`` multiplies the gradient by it on entry, before weight decay, as
#: torch does; the product with +-1 is exact, so minimizing is bit for bit as
#: without the option
SIGN = 11


def field_index(hyper_cls, name):
    """Position of ``name`` in the numeric hyperparameter array."""
    return numeric_fields(hyper_cls).index(name)


def numeric_fields(hyper_cls):
    """The fields of ``hyper_cls`` that go into the float64 array ``h``."""
    return tuple(f for f in hyper_cls._fields if hyper_cls.__annotations__[f] in (float, bool, int))


def check_lr(h):
    if not h.learning_rate >= 0.0:
        raise ValueError(f"Invalid learning_rate value: {h.learning_rate}")


def check_eps(h):
    if not h.eps >= 0.0:
        raise ValueError(f"Invalid epsilon value: {h.eps}")


def check_weight_decay(h):
    if not h.weight_decay >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {h.weight_decay}")


def check_unit(name, value):
    """``value`` must lie in [0, 1): a decay rate or a beta."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name} value: {value}")


def check_closed_unit(name, value):
    """``value`` must lie in [0, 1]: torch accepts the ends (RMSprop ``alpha=1``,
    Adadelta ``rho=1``, SGD ``dampening=1``), where the average stops moving."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid {name} value: {value}")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Invalid {name} value: {value!r}; expected one of {', '.join(map(repr, choices))}"
        )


#: b**t below this is 0 to 1 - b**t in float64 with a wide margin (half an ulp
#: of 1 is 2**-53 below it; 2**-60 leaves room for exp's rounding)
_TINY_LOG = -60.0 * math.log(2.0)


def power_log(b):
    """``(log b, t_sat)`` for bias corrections ``1 - b**t = 1 - exp(t log b)``.

    From step ``t_sat`` on, ``b**t < 2**-60`` and ``1 - b**t`` rounds to
    exactly 1.0, so a rule's ``coeffs`` can skip the ``exp`` there (and give
    bit for bit what the ``exp`` would): at Adam's b2 = 0.999 that is every
    step after the 41,500th.  ``b = 0``: ``log b = -inf`` and ``t_sat = 0``.
    """
    if b <= 0.0:
        return -math.inf, 0.0
    lb = math.log(b)
    return lb, float(math.ceil(_TINY_LOG / lb))
