r"""Learning-rate schedules for every rule.

A schedule maps the number of updates already taken, ``t = 0, 1, 2, ...``
(``t = 0`` for the first update, like optax's ``count``), to the learning
rate of that update.  The built-in schedules are multiplicative: they scale
the rule's ``learning_rate`` :math:`\eta_0`; a plain callable ``t -> lr``
gives the learning rate itself.

============================  ==============================================
``constant()``                :math:`\eta_0`
``step_decay(step, gamma)``   :math:`\eta_0\,\gamma^{\lfloor t/s\rfloor}`, s = step (``StepLR``)
``exponential(gamma)``        :math:`\eta_0\,\gamma^{t}` (torch ``ExponentialLR``)
``inverse_time(k)``           :math:`\eta_0 / (1 + k t)` (Robbins-Monro style decay)
``cosine(T, min_lr=0)``       :math:`m + (\eta_0 - m)(1 + \cos(\pi \min(t,T)/T))/2`
                              (Loshchilov & Hutter 2017, no restarts)
============================  ==============================================

Examples
--------
>>> from fastopt import schedules
>>> s = schedules.inverse_time(0.5)
>>> [s.lr(t, 1.0) for t in range(3)]
[1.0, 0.6666666666666666, 0.5]
"""

import math


class Schedule:
    """Base class: ``lr(t, base_lr)`` is the learning rate of update ``t``."""

    def factor(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def lr(self, t, base_lr):
        """Learning rate of update ``t`` (0-based) for base rate ``base_lr``."""
        return base_lr * self.factor(t)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class constant(Schedule):  # noqa: N801 - a function-like name, as optax's
    """The base learning rate at every step."""

    def factor(self, t):
        return 1.0


class step_decay(Schedule):  # noqa: N801
    """Multiply the rate by ``gamma`` every ``step`` updates."""

    def __init__(self, step, gamma=0.1):
        if not (isinstance(step, int) and step >= 1):
            raise ValueError(f"Invalid step value: {step!r} (need an integer >= 1)")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Invalid gamma value: {gamma}")
        self.step, self.gamma = step, float(gamma)

    def factor(self, t):
        return self.gamma ** (t // self.step)


class exponential(Schedule):  # noqa: N801
    """Multiply the rate by ``gamma`` every update."""

    def __init__(self, gamma):
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Invalid gamma value: {gamma}")
        self.gamma = float(gamma)

    def factor(self, t):
        return self.gamma**t


class inverse_time(Schedule):  # noqa: N801
    """``lr / (1 + k t)``."""

    def __init__(self, k):
        if not k >= 0.0:
            raise ValueError(f"Invalid k value: {k}")
        self.k = float(k)

    def factor(self, t):
        return 1.0 / (1.0 + self.k * t)


class cosine(Schedule):  # noqa: N801
    """Cosine annealing from the base rate to ``min_lr`` over ``T`` updates."""

    def __init__(self, T, min_lr=0.0):
        if not (isinstance(T, int) and T >= 1):
            raise ValueError(f"Invalid T value: {T!r} (need an integer >= 1)")
        if not min_lr >= 0.0:
            raise ValueError(f"Invalid min_lr value: {min_lr}")
        self.T, self.min_lr = T, float(min_lr)

    def lr(self, t, base_lr):
        u = min(t, self.T) / self.T
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * u))


def resolve(schedule):
    """Turn the ``schedule`` option into ``None`` (constant) or ``f(t, base_lr)``."""
    if schedule is None or schedule == "constant" or isinstance(schedule, constant):
        return None
    if isinstance(schedule, Schedule):
        rate = schedule.lr
    elif callable(schedule):

        def rate(t, base_lr):
            return schedule(t)

    else:
        raise ValueError(
            f"Invalid schedule: {schedule!r}; pass a fastopt.schedules object or a callable t -> lr"
        )

    def checked(t, base_lr):
        # every driver and opt.step take the rate from here: a negative or NaN
        # rate (a user's callable, a subclass) would step uphill or poison x
        lr = rate(t, base_lr)
        if type(lr) is not float:
            try:
                lr = float(lr)
            except (TypeError, ValueError):
                raise ValueError(f"schedule returned {lr!r} for update {t}, not a number") from None
        if not lr >= 0.0:
            raise ValueError(f"schedule returned learning rate {lr} for update {t} (need >= 0)")
        return lr

    return checked


__all__ = ["Schedule", "constant", "step_decay", "exponential", "inverse_time", "cosine"]
