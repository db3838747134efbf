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

from . import _device, _params
from . import schedules as _schedules
from .kernels import cpu
from .rules import KERNEL_IDS, KERNEL_TABLE, RULE_DEFAULTS, RULES
from .rules._base import numeric_fields

_NDARRAY = np.ndarray  # the device check in step(): one global lookup on the CPU path
_NAN = float("nan")
_tuple_new = tuple.__new__


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
    kernel : str or None
        The rule variant that made the state (``"adam_amsgrad"`` ...):
        ``step`` refuses a state of another method or variant.
    scalars : tuple of (str, float)
        Per-state scalars beside ``count``, in float64 (NAdam's
        ``mu_product``); saved by :meth:`to_dict` under their names.
    """

    count: int
    slots: np.ndarray
    names: tuple
    last_value: float = float("nan")
    kernel: str | None = None
    scalars: tuple = ()
    layout: object = None

    def _rows(self):
        S = self.slots
        if not isinstance(S, np.ndarray):  # device state: one copy to the host
            S = S.copy_to_host()
        if self.layout is not None:  # structured params: the flat rows
            S = self.layout.rows(S, len(self.names))
        return S

    def to_dict(self):
        """A plain dict of arrays and numbers (copies), e.g. for ``np.savez``.

        For structured parameters the slots are the rows of the flat vector
        (the arrays concatenated in order), as for a flat ``x``.
        """
        d = {"count": int(self.count), "last_value": float(self.last_value)}
        if self.kernel is not None:
            d["kernel"] = self.kernel
        d.update(self.scalars)
        S = self._rows()
        for k, name in enumerate(self.names):
            d[name] = S[k].copy()
        return d

    def __getitem__(self, key):
        if isinstance(key, str):
            if self.layout is not None:
                return self._rows()[self.names.index(key)]
            return self.slots[self.names.index(key)]
        return tuple.__getitem__(self, key)


def method_names():
    """Every first-order method name."""
    return tuple(RULES)


#: torch.optim's option names, accepted as aliases of fastopt's canonical ones:
#: ``alias -> canonical field(s)``; a tuple alias (``betas=(0.9, 0.999)``)
#: fills several fields.  An alias applies to a rule that has its fields.
ALIASES = {
    "lr": ("learning_rate",),
    "alpha": ("decay",),
    "betas": ("b1", "b2"),
    "etas": ("eta_minus", "eta_plus"),
    "step_sizes": ("min_step", "max_step"),
}


def _alias_message(alias, fields, values, field, message):
    """``message`` (about canonical ``field``) reworded with the name the user wrote."""
    if len(fields) == 1:
        return message.replace(f"Invalid {field} value", f"Invalid {alias} value")
    if alias == "betas":  # torch's own wording
        k = fields.index(field)
        return f"Invalid beta parameter at index {k}: {values[k]}"
    if alias == "etas":
        return f"Invalid eta values: {values[0]}, {values[1]}"
    return f"Invalid {alias} values: {', '.join(map(str, values))} ({message})"


def _expand_aliases(method, fields, options):
    """``options`` with torch's names replaced by the canonical ones.

    Returns ``(options, written)`` where ``written`` maps a canonical field
    to ``(alias, alias_fields, alias_values)`` for the fields the user gave
    by an alias (error messages name what the user wrote).
    """
    out, written = {}, {}
    for key, value in options.items():
        target = ALIASES.get(key)
        if target is None or not all(f in fields for f in target):
            if key in out:
                raise TypeError(f"{method}: got both {written[key][0]!r} and {key!r}")
            out[key] = value
            continue
        if len(target) == 1:
            values = (value,)
        else:
            try:
                values = tuple(value)
            except TypeError:
                values = ()
            if len(values) != len(target):
                raise ValueError(
                    f"Invalid {key} value: {value!r} (need {len(target)} numbers: "
                    f"{', '.join(target)})"
                )
        for f, v in zip(target, values, strict=True):
            if f in out:
                raise TypeError(f"{method}: got both {key!r} and {f!r} (give one)")
            out[f] = v
            written[f] = (key, target, values)
    return out, written


def make_hyper(method, options, *, on_unknown="raise"):
    """Build and validate the ``Hyper`` tuple of ``method`` from ``options``.

    torch's option names (:data:`ALIASES`: ``lr``, ``betas``, ``alpha``,
    ``etas``, ``step_sizes``) are accepted for the canonical ones; giving both
    is a TypeError.  Returns ``(rule_module, hyper, unknown)`` where
    ``unknown`` lists option names the rule does not have (raised as
    TypeError when ``on_unknown`` is ``"raise"``, returned otherwise so the
    caller can warn).
    """
    rule = RULES[method]
    fields = rule.Hyper._fields
    options, written = _expand_aliases(method, fields, options)
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
            f"valid options are {', '.join(fields)} (torch's names "
            f"{', '.join(a for a, t in ALIASES.items() if all(f in fields for f in t))} "
            "work too)"
        )

    def name_of(key):
        return written[key][0] if key in written else key

    for key, value in kw.items():
        kind = rule.Hyper.__annotations__[key]
        if kind is float:
            if isinstance(value, bool | np.bool_):  # True is not a rate
                raise ValueError(f"Invalid {name_of(key)} value: {value!r}")
            try:
                kw[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Invalid {name_of(key)} value: {value!r}") from None
        elif kind is bool:
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"Invalid {name_of(key)} value: {value!r} (need True or False)")
            kw[key] = bool(value)
    hyper = rule.Hyper(**kw)
    try:
        rule.validate(hyper)
    except ValueError as e:
        message = str(e)
        for field, (alias, target, values) in written.items():
            if f"Invalid {field} value" in message or f"{field}/" in message:
                raise ValueError(_alias_message(alias, target, values, field, message)) from None
        raise
    return rule, hyper, unknown


class Optimizer:
    """A compiled update rule with its hyperparameters and schedule.

    Create it with :func:`optimizer`.  ``init(x)`` returns a fresh
    :class:`OptState`; ``step(x, g, state)`` updates ``x`` in place with the
    gradient ``g`` and returns the new state (whose arrays are updated in
    place too: keep ``state.to_dict()`` copies to snapshot).
    """

    def __init__(self, method, rule, hyper, schedule=None, parallel=False, groups=()):
        self.method = method
        self.rule = rule
        self.hyper = hyper
        self.kid = KERNEL_IDS[rule.kernel_key(hyper)]
        # the table's own string: step() compares a state's variant by identity
        self.key = KERNEL_TABLE[self.kid][0]
        self.slot_names = KERNEL_TABLE[self.kid][1].slots
        self.h = _h_array(rule, hyper)
        #: parameter groups: ``(names, hyper)`` each (see :func:`optimizer`)
        self.groups = tuple((tuple(names), gh) for names, gh in groups)
        for _, gh in self.groups:
            if rule.kernel_key(gh) != self.key:
                raise ValueError(
                    f"a group selects the {rule.kernel_key(gh)!r} variant and the top level "
                    f"{self.key!r}: groups may change numbers, not the variant"
                )
        self._group_h = (self.h, *(_h_array(rule, gh) for _, gh in self.groups))
        # the scalar state's start values (coeffs changes h as it steps)
        self._group_h0 = tuple(h.copy() for h in self._group_h)
        self._group_hyper = (hyper, *(gh for _, gh in self.groups))
        self.schedule = schedule
        self._lr_of = _schedules.resolve(schedule)
        self.base_lr = float(hyper.learning_rate)
        self.needs_value = self.key in getattr(rule, "NEEDS_VALUE", ())
        #: whether a step can leave x exactly unchanged (the drivers then skip
        #: evaluating the same point again)
        self.zero_steps = bool(getattr(rule, "ZERO_STEPS", False))
        if parallel not in (True, False, None, "auto"):
            raise ValueError(f"Invalid parallel value: {parallel!r}")
        self.parallel = parallel
        self._nslots = len(self.slot_names)
        #: the slots that do not start at zero: (index, value)
        fill = rule.slot_init(hyper).items()
        self._slot_fill = tuple((self.slot_names.index(k), v) for k, v in fill if v != 0)
        #: the learning-rate table of a run without a schedule (the loops only
        #: read it; writeable, as numba types a read-only array apart)
        self._lr_const = np.array([self.base_lr])
        self._maximize = bool(getattr(hyper, "maximize", False))
        # scalar state (NAdam's mu_product): where it sits in h, and its start
        scalars = getattr(rule, "SCALARS", {})
        self._scalar_names = tuple(scalars)
        self._scalar_idx = tuple(scalars.values())
        self._scalars_t = getattr(rule, "SCALARS_T", None)
        self._scalars0 = tuple((k, float(self.h[i])) for k, i in scalars.items())
        # coefficient buffers by dtype; a dtype missing here is not a parameter dtype
        self._c = {np.dtype(d): np.zeros(cpu.N_COEFFS, dtype=d) for d in (np.float32, np.float64)}

    def __reduce__(self):
        # pickle and deepcopy by the definition (method, options, schedule),
        # not the compiled parts: rule modules and resolved schedules do not
        # pickle, and the rebuilt optimizer compiles to the same kernels
        return (_rebuild, (self.method, self.hyper, self.schedule, self.parallel, self.groups))

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
        if _params.is_structured(x):
            return self._init_tree(x)
        if self.groups:
            raise ValueError(
                "groups name entries of structured params (a dict, list or tuple of "
                "arrays); x is a single array"
            )
        x = _check_params(x)
        return OptState(0, self.new_slots(x), self.slot_names, kernel=self.key,
                        scalars=self._scalars0)  # fmt: skip

    def new_slots(self, x):
        """The state's slot array for 1-D ``x`` (checked by the caller), at its start values."""
        S = np.zeros((self._nslots, x.shape[0]), dtype=x.dtype)
        for i, value in self._slot_fill:
            S[i] = value
        return S

    def _layout(self, params):
        leaves, paths = _params.flatten(params)
        if not leaves:
            raise ValueError("params holds no arrays")
        on_device = not isinstance(leaves[0], np.ndarray)
        if on_device:
            from .kernels import cuda

            _device.require_cuda()
            leaves = [cuda.as_numba(a) for a in leaves]
        dtype = leaves[0].dtype
        for a, p in zip(leaves, paths, strict=True):
            where = f"params[{_params._key(p)}]"
            if isinstance(a, np.ndarray) == on_device:
                raise ValueError(f"{where}: params mix host and device arrays")
            if a.dtype not in (np.float32, np.float64):
                raise ValueError(f"{where} must be float32 or float64, got {a.dtype}")
            if a.dtype != dtype:
                raise ValueError(f"{where} is {a.dtype}; the first array is {dtype}: use one dtype")
            contiguous = a.is_c_contiguous() if on_device else a.flags.c_contiguous
            if not contiguous or not (on_device or a.flags.writeable):
                raise ValueError(f"{where} must be contiguous and writeable (updated in place)")
        group_of = _params.resolve_groups([names for names, _ in self.groups], paths)
        return _params.Layout(leaves, paths, group_of)

    def _scalar_keys(self):
        """``(state key, group, index in h)`` of every scalar of the state."""
        return tuple(
            (name if grp == 0 else f"{name}/{grp}", grp, i)
            for grp in range(len(self._group_h))
            for name, i in zip(self._scalar_names, self._scalar_idx, strict=True)
        )

    def _init_tree(self, params):
        layout = self._layout(params)
        nslots = len(self.slot_names)
        buf = np.zeros(nslots * layout.n, dtype=layout.dtype)
        for (_, _, grp), block in zip(layout.runs, layout.blocks(buf, nslots), strict=True):
            for name, value in self.rule.slot_init(self._group_hyper[grp]).items():
                block[self.slot_names.index(name)] = value
        scalars = tuple((k, float(self._group_h0[grp][i])) for k, grp, i in self._scalar_keys())
        if layout.device:
            buf = _device.require_cuda().to_device(buf)
        return OptState(0, buf, self.slot_names, _NAN, self.key, scalars, layout)

    def state_from_dict(self, d, like=None):
        """Rebuild a state from :meth:`OptState.to_dict` output (e.g. ``np.load``).

        With ``like`` a device array, the state is uploaded to the device in
        ``like``'s dtype (for ``step`` with ``x = like``).  The dict is checked
        as user input: a state of another rule variant, a count that is not a
        non-negative integer, slots that are not 1-D floating arrays of one
        length and dtype are ValueErrors.
        """
        if like is not None and _device.is_device_array(like):
            from .kernels import cuda

            return cuda.upload_state(self.state_from_dict(d), like)
        if like is not None and _params.is_structured(like):
            flat = self._state_from_dict(d, self._scalar_keys())
            layout = self._layout(like)
            S = flat.slots
            if self.slot_names and S.shape != (len(self.slot_names), layout.n):
                raise ValueError(f"state slots have shape {S.shape}; the params have {layout.n}")
            if self.slot_names and S.dtype != layout.dtype:
                raise ValueError(f"the state is {S.dtype} but the params are {layout.dtype}")
            buf = layout.from_rows(S) if self.slot_names else np.zeros(0, layout.dtype)
            if layout.device:
                buf = _device.require_cuda().to_device(buf)
            return flat._replace(slots=buf, layout=layout)
        return self._state_from_dict(d, self._scalar_keys()[: len(self._scalar_names)])

    def _state_from_dict(self, d, scalar_keys):
        kernel = d.get("kernel")
        if kernel is not None:
            kernel = str(np.asarray(kernel))  # np.load gives 0-d arrays
            if kernel != self.key:
                raise ValueError(f"state dict is of {kernel!r}; this optimizer runs {self.key!r}")
        missing = [n for n in self.slot_names if n not in d]
        if missing or "count" not in d:
            raise ValueError(f"state dict lacks {missing or ['count']} for {self.key}")
        count = np.asarray(d["count"])
        if (
            count.shape != ()
            or count.dtype.kind not in "iuf"
            or not np.isfinite(count)
            or count < 0
            or count != np.floor(count)
        ):
            raise ValueError(f"Invalid count value: {d['count']!r} (need an integer >= 0)")
        rows = []
        for name in self.slot_names:
            r = np.asarray(d[name])
            if r.ndim != 1 or r.dtype not in (np.float32, np.float64):
                raise ValueError(
                    f"state slot {name!r} must be a 1-D float32 or float64 array, "
                    f"got {r.dtype} with shape {r.shape}"
                )
            if rows and (r.shape != rows[0].shape or r.dtype != rows[0].dtype):
                raise ValueError(
                    f"state slots differ: {self.slot_names[0]!r} is {rows[0].dtype} "
                    f"{rows[0].shape}, {name!r} is {r.dtype} {r.shape}"
                )
            rows.append(r)
        S = np.stack(rows) if rows else np.zeros((0, 0))
        last = float(np.asarray(d.get("last_value", np.nan)))
        scalars = []
        for name, _, _ in scalar_keys:
            if name not in d:
                raise ValueError(f"state dict lacks [{name!r}] for {self.key}")
            v = np.asarray(d[name])
            if v.shape != () or v.dtype.kind not in "iuf" or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"Invalid {name} value: {d[name]!r} (need a number in [0, 1])")
            scalars.append((name, float(v)))
        return OptState(int(count), S, self.slot_names, last, self.key, tuple(scalars))

    def step(self, x, g, state, value=None):
        """Update ``x`` in place by one step with gradient ``g``; return the new state.

        ``value`` (the objective at ``x``) is needed by ``rprop`` with
        ``variant="irprop+"`` only.  A device ``x`` runs the rule's CUDA kernel
        (``g`` on the device; a host ``g`` is uploaded).

        Everything is checked before compiled code touches it (numba does no
        bounds checking): ``g`` must have the shape and dtype of ``x``, and
        ``state`` must come from this optimizer's rule variant, for ``x``'s
        size and dtype; otherwise ValueError.
        """
        if type(x) is not _NDARRAY:
            if _params.is_structured(x):
                return self._step_tree(x, g, state, value)
            if _device.is_device_array(x):
                from .kernels import cuda

                return cuda.step(self, x, g, state, value)
            _check_params(x)
        S = state.slots
        t = state.count
        xd = x.dtype
        c = self._c.get(xd)
        # cheap comparisons of cached attributes only (dtypes and the state's
        # variant by identity, the number of slots by len): anything unusual
        # goes to _checked, which compares by value and raises the precise
        # message.  The lengths of g and of the slots against x are checked
        # inside the kernel (cpu._check), before it reads anything.
        if (
            c is None
            or type(g) is not _NDARRAY
            or g.dtype is not xd
            or type(S) is not _NDARRAY
            or S.dtype is not xd
            or state.kernel is not self.key
            or len(S) != self._nslots
            or type(t) is not int
            or t < 0
            or x.ndim != 1
            or g.ndim != 1
            or S.ndim != 2
        ):
            S, t = self._checked(x, g, state)
        t += 1
        # (schedules.resolve checks a scheduled rate: a float >= 0)
        lr = self.base_lr if self._lr_of is None else self._lr_of(t - 1, self.base_lr)
        aux = 0.0
        if self.needs_value:
            if value is None:
                raise ValueError(
                    "rprop variant 'irprop+' needs the objective: step(x, g, state, value=f)"
                )
            # the sign of f's change (rprop's coeffs reads it against maximize)
            last = state.last_value
            aux = 1.0 if value > last else (-1.0 if value < last else 0.0)
        if self.parallel and x.shape[0] >= cpu.PARALLEL_MIN_SIZE:
            kernel, kid = cpu.step_parallel, (self.kid,)
        else:  # the rule's own kernel: compiles (first use) or loads only this one
            kernel, kid = cpu.SERIAL[self.kid], ()
        scalars = state.scalars
        if self._scalar_idx:
            self._load_scalars(state, t - 1)
            kernel(*kid, x, g, S, self.h, t, lr, aux, c)
            scalars = self._scalars_now()
        else:
            kernel(*kid, x, g, S, self.h, t, lr, aux, c)
        # tuple.__new__ directly: the NamedTuple's generated __new__ is a
        # Python frame of its own (~0.2 us here)
        return _tuple_new(
            OptState,
            (
                t,
                S,
                self.slot_names,
                _NAN if value is None else float(value),
                self.key,
                scalars,
                None,
            ),
        )

    def _scalars_now(self):
        """The scalar state as ``coeffs`` left it in ``h`` after a step."""
        return tuple(
            (k, float(self.h[i])) for k, i in zip(self._scalar_names, self._scalar_idx, strict=True)
        )

    def _load_scalars(self, state, count):
        """Put ``state``'s scalars (through update ``count``) into ``h`` for the next step."""
        sc = state.scalars
        if tuple(k for k, _ in sc) != self._scalar_names:
            raise ValueError(
                f"state has scalars {tuple(k for k, _ in sc)}; {self.key!r} needs "
                f"{self._scalar_names} (create it with init or state_from_dict)"
            )
        for (_, v), i in zip(sc, self._scalar_idx, strict=True):
            self.h[i] = v
        self.h[self._scalars_t] = count

    def _step_tree(self, params, grads, state, value):
        """:meth:`step` for structured params: one kernel call per run of the layout."""
        layout = state.layout if isinstance(state, OptState) else None
        if layout is None:
            raise ValueError(
                "params are structured but the state is not: create it with opt.init(params) "
                "or opt.state_from_dict(d, like=params)"
            )
        if state.kernel != self.key:
            raise ValueError(f"state is of {state.kernel!r}; this optimizer runs {self.key!r}")
        t = state.count
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 0:
            raise ValueError(f"Invalid count value: {t!r} (need an integer >= 0)")
        nslots = len(self.slot_names)
        buf = state.slots
        on_device = _device.is_numba_device_array(buf)
        if (
            (on_device != layout.device or (type(buf) is not _NDARRAY and not on_device))
            or buf.ndim != 1
            or buf.shape[0] != nslots * layout.n
            or buf.dtype != layout.dtype
        ):
            raise ValueError("the state's slots do not fit its layout (a state of other params?)")
        if len(state.scalars) != len(self._scalar_keys()):
            raise ValueError("the state's scalars do not match this optimizer's groups")
        xs = layout.x_views(params)
        gs = layout.g_views(grads)
        blocks = layout.blocks(buf, nslots)
        t = int(t) + 1
        hs = self._group_h
        lrs = self._group_lrs(t - 1)
        aux = 0.0
        if self.needs_value:
            if value is None:
                raise ValueError(
                    "rprop variant 'irprop+' needs the objective: step(x, g, state, value=f)"
                )
            last = state.last_value
            aux = 1.0 if value > last else (-1.0 if value < last else 0.0)  # sign of the change
        for (_, grp, i), (_, v) in zip(self._scalar_keys(), state.scalars, strict=True):
            hs[grp][i] = v
            hs[grp][self._scalars_t] = t - 1
        kid = self.kid
        if layout.device:  # one launch per run: one for a packed buffer
            from .kernels import cuda

            for (_, _, grp), xv, gv, S in zip(layout.runs, xs, gs, blocks, strict=True):
                cuda.launch_step(kid, hs[grp], t, lrs[grp], aux, xv, gv, S)
        else:
            c = self._c[layout.dtype]
            kernel = cpu.step
            if self.parallel and layout.n >= cpu.PARALLEL_MIN_SIZE:
                kernel = cpu.step_parallel
            for (_, _, grp), xv, gv, S in zip(layout.runs, xs, gs, blocks, strict=True):
                kernel(kid, xv, gv, S, hs[grp], t, lrs[grp], aux, c)
        scalars = tuple((k, float(hs[grp][i])) for k, grp, i in self._scalar_keys())
        last = _NAN if value is None else float(value)
        return OptState(t, buf, self.slot_names, last, self.key, scalars, layout)

    def _group_lrs(self, t):
        """The rate of update ``t`` (0-based) of every group.

        A :mod:`fastopt.schedules` object scales each group's own base rate
        (as torch's schedulers scale each group's ``lr``); a plain callable
        gives the top-level rate, and a group's rate is scaled by the ratio of
        its base rate to the top-level one.
        """
        bases = tuple(float(gh.learning_rate) for gh in self._group_hyper)
        if self._lr_of is None:
            return bases
        if isinstance(self.schedule, _schedules.Schedule):
            return tuple(self._lr_of(t, b) for b in bases)
        top = self._lr_of(t, bases[0])
        if bases[0] == 0.0:
            return (top,) * len(bases)
        return tuple(top * (b / bases[0]) for b in bases)

    def _checked(self, x, g, state):
        """``(slots, count)`` of ``state`` for a step of ``x`` with ``g``, or a ValueError."""
        x = _check_params(x)
        if not isinstance(g, np.ndarray):
            raise TypeError(f"g must be a numpy array like x, got {type(g).__name__}")
        if g.shape != x.shape:
            raise ValueError(f"g must have the shape of x {x.shape}, got {g.shape}")
        if g.dtype != x.dtype:
            raise ValueError(f"g must have the dtype of x ({x.dtype}), got {g.dtype}")
        if not isinstance(state, OptState):
            raise TypeError(f"state must be an OptState (from init), got {type(state).__name__}")
        if state.layout is not None:
            raise ValueError("the state is for structured params (init(params)); x is one array")
        if state.kernel is not None and state.kernel != self.key:
            raise ValueError(
                f"state is of {state.kernel!r}; this optimizer runs {self.key!r} "
                "(create the state with this optimizer's init or state_from_dict)"
            )
        if tuple(state.names) != self.slot_names:
            raise ValueError(
                f"state has slots {tuple(state.names)}; {self.key!r} needs {self.slot_names}"
            )
        t = state.count
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 0:
            raise ValueError(f"Invalid count value: {t!r} (need an integer >= 0)")
        S = state.slots
        if not isinstance(S, np.ndarray):
            raise ValueError(
                "x is on the host but the state is not (numpy slots): create it with opt.init(x)"
            )
        n = x.shape[0]
        if S.shape == (0, 0) and not self.slot_names:  # a slot-less state from a dict
            S = np.zeros((0, n), dtype=x.dtype)
        if S.ndim != 2 or S.shape != (self._nslots, n):
            raise ValueError(
                f"x, g and the state must have the same length: x has {n} elements, "
                f"the state's slots have shape {S.shape} (need {(self._nslots, n)})"
            )
        if S.dtype != x.dtype:
            raise ValueError(f"the state is {S.dtype} but x is {x.dtype}: they must agree")
        if not S.flags.c_contiguous or not g.flags.c_contiguous:
            raise ValueError("g and the state's slots must be contiguous")
        return S, int(t)


def _rebuild(method, hyper, schedule, parallel, groups=()):
    """An :class:`Optimizer` from what :meth:`Optimizer.__reduce__` saved."""
    return Optimizer(
        method, RULES[method], hyper, schedule=schedule, parallel=parallel, groups=groups
    )


def _h_array(rule, hyper):
    """The float64 hyperparameter array of ``hyper`` (with ``prepare``'s constants)."""
    h = tuple(float(getattr(hyper, f)) for f in numeric_fields(rule.Hyper))
    if hasattr(rule, "prepare"):
        h = rule.prepare(h)
    return np.array(h, dtype=np.float64)


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


def warn_if_schedule_unused(method, schedule, stacklevel):
    """Warn that rprop ignores a schedule (its learning_rate is only the first step size)."""
    if method == "rprop" and schedule is not None:
        warnings.warn(
            "rprop: a learning-rate schedule has no effect (learning_rate is only the "
            "initial step size)",
            UserWarning,
            stacklevel=stacklevel,
        )


def optimizer(method, *, schedule=None, parallel=False, groups=None, **hyper):
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
    groups : list of dict, optional
        Parameter groups, torch's semantics: each dict has ``"params"``, a
        list of the entries of the params container it covers (keys of a
        dict, indices of a list, tuple paths into nested containers; an entry
        that is a container covers all its arrays), and the options that
        differ from the top level (``{"params": ["b1", "b2"],
        "weight_decay": 0.0, "lr": 3e-3}``).  Entries no group names use the
        top-level options.  Groups need structured params (``init(params)``
        with a dict, list or tuple); they may change numbers, not the kernel
        variant (``amsgrad``, ``centered``, ``variant`` ... stay as at the top
        level).  See :doc:`/user_guide/params`.
    **hyper
        The rule's hyperparameters (see the rule's docstring).  Every rule
        also takes ``maximize=False`` (torch's semantics: ascend, with the
        gradient negated on entry, before weight decay).  torch's option
        names are accepted for fastopt's (:data:`ALIASES`: ``lr``,
        ``betas``, ``alpha``, ``etas``, ``step_sizes``); giving both is a
        TypeError.

    Raises
    ------
    ValueError
        Unknown method (the message lists the methods) or a hyperparameter
        out of range (``"Invalid b1 value: 1.0"``).
    TypeError
        An option the rule does not have.
    """
    if method not in RULES:
        raise ValueError(f"Unknown method {method!r}; first-order methods are: {', '.join(RULES)}")
    rule, h, _ = make_hyper(method, hyper, on_unknown="raise")
    warn_if_schedule_unused(method, schedule, stacklevel=3)
    group_specs = _group_specs(method, rule, hyper, groups)
    return Optimizer(method, rule, h, schedule=schedule, parallel=parallel, groups=group_specs)


def _group_specs(method, rule, top, groups):
    """``[(names, hyper)]`` of torch-style ``groups`` (options over the top level's)."""
    if groups is None:
        return ()
    if isinstance(groups, dict) or not isinstance(groups, list | tuple):
        raise TypeError(f"groups must be a list of dicts, got {type(groups).__name__}")
    fields = rule.Hyper._fields
    top_canonical, _ = _expand_aliases(method, fields, top)
    specs = []
    for k, grp in enumerate(groups):
        if not isinstance(grp, dict):
            raise TypeError(f"groups[{k}] must be a dict, got {type(grp).__name__}")
        if "params" not in grp:
            raise ValueError(f"groups[{k}] has no 'params' (the entries it covers)")
        names = grp["params"]
        if isinstance(names, str | int) or not isinstance(names, list | tuple):
            names = [names]
        opts = {key: v for key, v in grp.items() if key != "params"}
        for bad in ("schedule", "parallel", "groups"):
            if bad in opts:
                raise TypeError(f"groups[{k}]: {bad!r} is set for the whole optimizer only")
        try:
            # the group's options as written (messages name them so), over the
            # top level's fields that the group does not set
            canonical, _ = _expand_aliases(method, fields, opts)
            merged = {f: v for f, v in top_canonical.items() if f not in canonical}
            _, gh, _ = make_hyper(method, {**merged, **opts}, on_unknown="raise")
        except (TypeError, ValueError) as e:
            raise type(e)(f"groups[{k}]: {e}") from None
        specs.append((list(names), gh))
    return tuple(specs)
