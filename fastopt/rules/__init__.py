"""The update rules: the math of each, once (see :mod:`fastopt.rules._base`).

``RULES`` maps a method name to its rule module; ``RULE_DEFAULTS`` holds the
option overrides of methods that are presets of another rule (``adamw``).
"""

from . import adadelta, adagrad, adam, adamax, momentum, nadam, nag, radam, rmsprop, rprop, sgd

RULES = {
    "sgd": sgd,
    "momentum": momentum,
    "nag": nag,
    "rprop": rprop,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adam,
    "adamax": adamax,
    "nadam": nadam,
    "radam": radam,
}

RULE_DEFAULTS = {"adamw": adam.ADAMW_DEFAULTS}

#: every compiled variant, in a fixed order: its index is the kernel id
KERNEL_TABLE = tuple(
    (key, k)
    for mod in (sgd, momentum, nag, rprop, adagrad, rmsprop, adadelta, adam, adamax, nadam, radam)
    for key, k in mod.KERNELS.items()
)
KERNEL_IDS = {key: i for i, (key, _) in enumerate(KERNEL_TABLE)}
