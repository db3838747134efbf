"""First use after ``pip install``: seconds with an empty numba cache, and warm.

Each sample is a fresh Python process with its own new, empty
``NUMBA_CACHE_DIR`` (see ``benchmarks/coldstart.py``, which runs the same
cases and prints them as a table with issue 12's targets).  ``track_cold`` is
what the first call costs after ``import fastopt`` (compiling every kernel it
needs); ``track_warm`` is a second process on the same cache directory
(loading them).  The numbers are wall-clock seconds of one run each, so they
vary with the machine's load (the ``_cpu`` tracks, the processes' CPU time,
much less so); a change that compiles more shows as a jump.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

from .coldstart import CASES, cold_warm  # noqa: E402


class ColdStart:
    """Cold and warm first-call seconds of each case of ``coldstart.CASES``."""

    params = list(CASES)
    param_names = ["case"]
    unit = "seconds"
    timeout = 300
    number = 1
    repeat = 1

    def setup_cache(self):
        # one cold/warm pair per case: both tracks read it (a cold run is
        # tens of seconds on a loaded machine; running it twice buys nothing)
        return {name: cold_warm(name)[:2] for name in CASES}

    def track_cold(self, results, case):
        return results[case][0][0]

    def track_warm(self, results, case):
        return results[case][1][0]

    def track_cold_cpu(self, results, case):
        return results[case][0][1]

    def track_warm_cpu(self, results, case):
        return results[case][1][1]
