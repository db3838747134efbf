"""Fit on dask arrays: the work goes to the workers that hold the rows.

``pip install "fastopt[dask]"``.  :func:`minimize` minimizes a mean over the
rows of dask arrays (``fg_chunk`` evaluated on every row chunk where it
lives, one round trip per evaluation; minibatch epochs run on the workers);
:class:`Chunks` holds the arrays' row chunks on the workers for reuse across
fits.  :mod:`fastopt.models` estimators take dask arrays through the same
machinery.  See the user guide, "Data larger than memory".
"""

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastopt.distributed needs dask; install it with: pip install 'fastopt[dask]'"
    ) from exc

from ._chunks import Chunks
from ._minimize import batch_order, minimize

__all__ = ["Chunks", "batch_order", "minimize"]
