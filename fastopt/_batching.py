"""Minibatch plumbing shared by every driver and solver.

The permutation generator is written once as an ``@njit`` function and used by
the Python driver and the compiled driver alike, so a given ``seed`` gives the
same batches, and therefore the same iterates, in both.
"""

import numpy as np
from numba.core import types
from numba.extending import overload

from . import _jit

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


@_jit.kernel
def splitmix64(state):
    """Advance a SplitMix64 generator; returns ``(new_state, output)``.

    SplitMix64 (Steele, Lea & Flood 2014) is tiny, has no hidden state and
    compiles identically in Python-called and nopython code.
    """
    # np.uint64(): from Python the state comes back as an int, typed int64
    state = np.uint64(state) + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@_jit.kernel
def shuffle(perm, state):
    """Fisher-Yates shuffle of ``perm`` in place; returns the new RNG state.

    Uses Lemire-free modulo reduction: the bias is below 2**-40 for any
    realistic data size and the method is the same in both drivers.
    """
    state = np.uint64(state)
    for i in range(perm.shape[0] - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
    return state


def seed_state(seed):
    """The generator's starting state for an integer ``seed`` (None -> 0)."""
    return np.uint64(0 if seed is None else int(seed) & 0xFFFFFFFFFFFFFFFF)


def sliced_positions(args):
    """Indices of the entries of ``args`` that are sliced along axis 0."""
    return tuple(k for k, a in enumerate(args) if isinstance(a, np.ndarray) and a.ndim >= 1)


def check_batch_args(args):
    """Validate minibatch ``args``; returns the number of samples.

    Every array with ``ndim >= 1`` is sliced along axis 0, so they must share
    that length.
    """
    pos = sliced_positions(args)
    if not pos:
        raise ValueError(
            "batch_size was given but no entry of `args` is an array with ndim >= 1 "
            "to slice along axis 0"
        )
    lengths = {k: args[k].shape[0] for k in pos}
    if len(set(lengths.values())) != 1:
        shapes = ", ".join(f"args[{k}].shape={args[k].shape}" for k in pos)
        raise ValueError(
            f"every array in `args` must have the same length along axis 0 to be "
            f"minibatched; got {shapes}"
        )
    return next(iter(lengths.values()))


def take_args(args, idx):
    """``args`` with every array of ``ndim >= 1`` replaced by ``a[idx]``.

    Works from Python and, through the overload below, inside nopython code.
    """
    return tuple(a[idx] if isinstance(a, np.ndarray) and a.ndim >= 1 else a for a in args)


@overload(take_args)
def _take_args_nb(args, idx):
    # The tuple's element types are known at typing time, so the
    # implementation is generated for them: arrays are gathered, the rest
    # passes through.  numba cannot build a heterogeneous tuple in a loop.
    if not isinstance(args, types.BaseTuple):
        return None
    parts = []
    for k, ty in enumerate(args.types):
        if isinstance(ty, types.Array) and ty.ndim >= 1:
            parts.append(f"args[{k}][idx]")
        else:
            parts.append(f"args[{k}]")
    src = "def impl(args, idx):\n    return (" + "".join(p + ", " for p in parts) + ")\n"
    ns = {}
    exec(src, ns)  # noqa: S102 - generated from type information only
    return ns["impl"]
