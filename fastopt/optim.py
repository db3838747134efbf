"""The optimizer API for your own loop: ``optimizer(name, ...)`` with
``init`` and ``step``.

>>> import numpy as np, fastopt
>>> opt = fastopt.optimizer("adam", learning_rate=0.1)
>>> x = np.array([1.0, -2.0])
>>> state = opt.init(x)
>>> for _ in range(200):
...     state = opt.step(x, 2 * x, state)   # gradient of |x|^2; x changes in place
>>> bool(np.abs(x).max() < 1e-2)
True
"""

import warnings
from typing import NamedTuple

import numpy as np

from . import _device
from . import schedules as _schedules
from .kernels import cpu
from .rules import KERNEL_IDS, KERNEL_TABLE, RULE_DEFAULTS, RULES
from .rules._base import numeric_fields

_NDARRAY = np.ndarray  # the device check in step(): one global lookup on the CPU path


class OptState(NamedTuple):
    """Optimizer state: explicit data, saved and restored exactly.

    Attributes
    ----------
    count : int
        Updates taken so far (the next update is number ``count + 1``).
    slots : ndarray, shape (len(names), n)
        The rule's state buffers, one row per slot, in the dtype of ``x``.
    names : tuple of str
        Slot names, after torch's state keys (``exp_avg``, ``exp_avg_sq`` ...).
    last_value : float
        The objective value passed to the previous ``step`` (NaN if none);
        iRprop+ compares against it.
    """

    count: int
    slots: np.ndarray
    names: tuple
    last_value: float = float("nan")

    def to_dict(self):
        """A plain dict of arrays and numbers (copies), e.g. for ``np.savez``."""
        d = {"count": int(self.count), "last_value": float(self.last_value)}
        S = self.slots
        if not isinstance(S, np.ndarray):  # device state: one copy to the host
            S = S.copy_to_host()
        for k, name in enumerate(self.names):
            d[name] = S[k].copy()
        return d

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.slots[self.names.index(key)]
        return tuple.__getitem__(self, key)


def method_names():
    """Every first-order method name."""
    return tuple(RULES)


def make_hyper(method, options, *, on_unknown="raise"):
    """Build and validate the ``Hyper`` tuple of ``method`` from ``options``.

    Returns ``(rule_module, hyper, unknown)`` where ``unknown`` lists option
    names the rule does not have (raised as TypeError when ``on_unknown`` is
    ``"raise"``, returned otherwise so the caller can warn).
    """
    rule = RULES[method]
    fields = rule.Hyper._fields
    kw = dict(RULE_DEFAULTS.get(method, {}))
    unknown = []
    for key, value in options.items():
        if key in fields:
            kw[key] = value
        else:
            unknown.append(key)
    if unknown and on_unknown == "raise":
        raise TypeError(
            f"{method}: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"valid options are {', '.join(fields)}"
        )
    for key, value in kw.items():
        kind = rule.Hyper.__annotations__[key]
        if kind is float:
            try:
                kw[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Invalid {key} value: {value!r}") from None
        elif kind is bool:
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"Invalid {key} value: {value!r} (need True or False)")
            kw[key] = bool(value)
    hyper = rule.Hyper(**kw)
    rule.validate(hyper)
    return rule, hyper, unknown


class Optimizer:
    """A compiled update rule with its hyperparameters and schedule.

    Create it with :func:`optimizer`.  ``init(x)`` returns a fresh
    :class:`OptState`; ``step(x, g, state)`` updates ``x`` in place with the
    gradient ``g`` and returns the new state (whose arrays are updated in
    place too: keep ``state.to_dict()`` copies to snapshot).
    """

    def __init__(self, method, rule, hyper, schedule=None, parallel=False):
        self.method = method
        self.rule = rule
        self.hyper = hyper
        self.key = rule.kernel_key(hyper)
        self.kid = KERNEL_IDS[self.key]
        self.slot_names = KERNEL_TABLE[self.kid][1].slots
        h = tuple(float(getattr(hyper, f)) for f in numeric_fields(rule.Hyper))
        if hasattr(rule, "prepare"):
            h = rule.prepare(h)
        self.h = np.array(h, dtype=np.float64)
        self.schedule = schedule
        self._lr_of = _schedules.resolve(schedule)
        self.base_lr = float(hyper.learning_rate)
        self.needs_value = self.key in getattr(rule, "NEEDS_VALUE", ())
        if parallel not in (True, False, None, "auto"):
            raise ValueError(f"Invalid parallel value: {parallel!r}")
        self.parallel = parallel
        self._c = {}

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.hyper._asdict().items())
        return f"Optimizer({self.method!r}, {opts})"

    def lr(self, t):
        """Learning rate of update ``t`` (0-based)."""
        return self.base_lr if self._lr_of is None else self._lr_of(t, self.base_lr)

    def init(self, x):
        """A fresh state for parameters like ``x`` (1-D float32 or float64).

        For a device array ``x`` (numba, CuPy, torch: anything with
        ``__cuda_array_interface__``) the state lives on the device too.
        """
        if not isinstance(x, np.ndarray) and _device.is_device_array(x):
            from .kernels import cuda

            return cuda.init_state(self, x)
        x = _check_params(x)
        S = np.zeros((len(self.slot_names), x.shape[0]), dtype=x.dtype)
        for name, value in self.rule.slot_init(self.hyper).items():
            S[self.slot_names.index(name)] = value
        return OptState(0, S, self.slot_names)

    def state_from_dict(self, d, like=None):
        """Rebuild a state from :meth:`OptState.to_dict` output (e.g. ``np.load``).

        With ``like`` a device array, the state is uploaded to the device in
        ``like``'s dtype (for ``step`` with ``x = like``).
        """
        if like is not None and _device.is_device_array(like):
            from .kernels import cuda

            return cuda.upload_state(self.state_from_dict(d), like)
        missing = [n for n in self.slot_names if n not in d]
        if missing or "count" not in d:
            raise ValueError(f"state dict lacks {missing or ['count']} for {self.key}")
        S = np.stack([np.asarray(d[n]) for n in self.slot_names]) if self.slot_names else None
        if S is None:
            S = np.zeros((0, 0))
        return OptState(int(d["count"]), S, self.slot_names, float(d.get("last_value", "nan")))

    def step(self, x, g, state, value=None):
        """Update ``x`` in place by one step with gradient ``g``; return the new state.

        ``value`` (the objective at ``x``) is needed by ``rprop`` with
        ``variant="irprop+"`` only.  A device ``x`` runs the rule's CUDA kernel
        (``g`` on the device; a host ``g`` is uploaded).
        """
        if type(x) is not _NDARRAY and _device.is_device_array(x):
            from .kernels import cuda

            return cuda.step(self, x, g, state, value)
        t = state.count + 1
        lr = self.base_lr if self._lr_of is None else self._lr_of(t - 1, self.base_lr)
        aux = 0.0
        if self.needs_value:
            if value is None:
                raise ValueError(
                    "rprop variant 'irprop+' needs the objective: step(x, g, state, value=f)"
                )
            aux = 1.0 if value > state.last_value else 0.0
        c = self._c.get(x.dtype)
        if c is None:
            c = self._c[x.dtype] = np.zeros(cpu.N_COEFFS, dtype=x.dtype)
        S = state.slots
        if S.shape[0] == 0 and S.shape[1] != x.shape[0]:
            S = np.zeros((0, x.shape[0]), dtype=x.dtype)
        if self.parallel and x.shape[0] >= cpu.PARALLEL_MIN_SIZE:
            cpu.step_parallel(self.kid, x, g, S, self.h, t, lr, aux, c)
        else:  # the rule's own kernel: compiles (first use) or loads only this one
            cpu.SERIAL[self.kid](x, g, S, self.h, t, lr, aux, c)
        return OptState(t, S, self.slot_names, float("nan") if value is None else float(value))


def _check_params(x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array (updated in place), got {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"x must be float32 or float64, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError("x must be contiguous (it is updated in place)")
    return x


def optimizer(method, *, schedule=None, parallel=False, **hyper):
    """Create an :class:`Optimizer` for your own loop.

    Parameters
    ----------
    method : str
        One of :data:`fastopt.METHODS` first-order names: ``sgd``,
        ``momentum``, ``nag``, ``rprop``, ``adagrad``, ``rmsprop``,
        ``adadelta``, ``adam``, ``adamw``, ``adamax``.
    schedule : Schedule or callable, optional
        A :mod:`fastopt.schedules` object (scales ``learning_rate``) or a
        callable ``t -> lr`` with ``t`` the 0-based update number.
    parallel : bool
        Use numba's threads for ``n >= 2**17`` elements
        (``fastopt.kernels.cpu.PARALLEL_MIN_SIZE``, past where the parallel
        step was measured to win with 2 to 16 threads on quiet machines).  Off by
        default: on small shared machines a second thread often stalls.
    **hyper
        The rule's hyperparameters (see the rule's docstring).

    Raises
    ------
    ValueError
        Unknown method (the message lists the methods) or a hyperparameter
        out of range (``"Invalid b1 value: 1.0"``).
    TypeError
        An option the rule does not have.
    """
    if method not in RULES:
        raise ValueError(
            f"Unknown method {method!r}; first-order methods are: {', '.join(RULES)}"
        )
    rule, h, _ = make_hyper(method, hyper, on_unknown="raise")
    if method == "rprop" and schedule is not None:
        warnings.warn(
            "rprop: a learning-rate schedule has no effect (learning_rate is only the "
            "initial step size)",
            UserWarning,
            stacklevel=2,
        )
    return Optimizer(method, rule, h, schedule=schedule, parallel=parallel)
