"""``python -m fastopt`` and the ``fastopt`` command: the showcase race.

See :mod:`fastopt._showcase`; ``python -m fastopt --help`` lists the options.
``python -m fastopt precompile [--all | METHOD ...]`` fills numba's cache
ahead of time (:mod:`fastopt._precompile`); ``python -m fastopt --version``
prints the version.
"""

import sys


def main(argv=None):
    """Run the showcase, or ``precompile`` when that is the first argument."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["precompile"]:
        from ._precompile import main as precompile

        return precompile(argv[1:])
    from ._showcase import main as showcase

    return showcase(argv)


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
