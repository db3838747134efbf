"""``python -m fastopt`` and the ``fastopt`` command: the showcase race.

See :mod:`fastopt._showcase`; ``python -m fastopt --help`` lists the options.
"""

import sys

from ._showcase import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
