"""One progress display for long work: ``minimize(..., options={"disp": True})``,
the estimators' ``verbose=True`` and the showcase (``python -m fastopt``).

:class:`Progress` shows what is done of a total, the latest loss and the rate.
It draws with `tqdm <https://tqdm.github.io>`_ when that is installed (the
``progress`` and ``plot`` extras install it) and otherwise writes plain text:
one line redrawn in place on a terminal, or a line every few seconds when the
output goes to a file or a pipe (a log must not fill with carriage returns).
Either way the display ends with a newline when it is closed, and nothing is
written unless one is created: fastopt is silent by default.
"""

import sys
import time

#: seconds between two redraws of a plain in-place line (a redraw costs more
#: than a small optimizer step)
REDRAW_S = 0.1
#: seconds between two plain lines when the output is not a terminal
LINE_S = 5.0


def _tqdm():
    """``tqdm.tqdm``, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of one piece of work: ``done`` of ``total`` units, a loss and a rate.

    Parameters
    ----------
    label : str
        What is running (``"adam"``, ``"LogisticRegression"``, a problem title).
    total : int or None
        Units of the whole work (iterations, epochs, methods), when known.
    unit : str
        Name of a unit, for the counter and the rate (``"it"``, ``"epoch"``).
    file : file object, optional
        Where to draw; default ``sys.stdout`` (where scipy's ``disp`` prints).
    plain : bool
        Draw the plain text display even when tqdm is installed.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress("adam", total=3, unit="it", file=out, plain=True)
    >>> for t in (1, 2, 3):
    ...     bar.update(t, loss=1.0 / t)
    >>> bar.close()
    >>> out.getvalue().splitlines()[-1].startswith("adam: [####################] 3/3 it")
    True
    """

    def __init__(self, label, total=None, unit="it", file=None, plain=False):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.loss = None
        self.note = ""
        self._t0 = time.perf_counter()
        self._last = -float("inf")
        self._closed = False
        self._wrote = False
        self._drawn = None  # (done, loss) of the last plain line
        file = sys.stdout if file is None else file
        tqdm = None if plain else _tqdm()
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=label, unit=unit, file=file, leave=True,
                             dynamic_ncols=True, mininterval=REDRAW_S)  # fmt: skip
            self._file = None
        else:
            self._bar = None
            self._file = file
            self._tty = _isatty(self._file)

    # -- updates ---------------------------------------------------------------
    def update(self, done, loss=None, note=None):
        """Record that ``done`` units (a running count, not an increment) are done."""
        if self._closed:
            return
        delta = done - self.done
        self.done = done
        if loss is not None:
            self.loss = float(loss)
        if note is not None:
            self.note = note
        if self._bar is not None:
            post = self._postfix()
            if post:
                self._bar.set_postfix_str(post, refresh=False)
            self._bar.update(delta)
            return
        now = time.perf_counter()
        finished = self.total is not None and done >= self.total
        if now - self._last >= (REDRAW_S if self._tty else LINE_S) or finished:
            self._last = now
            self._draw(now)

    def set_note(self, note):
        """Show ``note`` (the method running now, say) next to the counter."""
        self.update(self.done, note=note)

    def close(self):
        """Finish the display with a newline (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            return
        self._draw(time.perf_counter(), final=True)
        if self._tty and self._wrote:
            self._file.write("\n")
        self._file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plain text ------------------------------------------------------------
    def _postfix(self):
        parts = [self.note] if self.note else []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.6g}")
        return ", ".join(parts)

    def text(self, now=None):
        """The plain display: ``label: done/total unit [bar] loss, rate, elapsed``."""
        now = time.perf_counter() if now is None else now
        elapsed = now - self._t0
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        bar = ""
        if self.total:
            width = 20
            filled = int(width * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] "
        rate = f"{self.done / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.done else ""
        tail = ", ".join(p for p in (self._postfix(), rate, f"{elapsed:.1f} s") if p)
        return f"{self.label}: {bar}{count} {self.unit}  {tail}"

    def _draw(self, now, final=False):
        if final and not self._tty and self._drawn == (self.done, self.loss):
            return  # the last line already says it
        self._drawn = (self.done, self.loss)
        line = self.text(now)
        if self._tty:
            self._file.write("\r" + line + "\x1b[K")
        else:
            self._file.write(line + "\n")
        self._file.flush()
        self._wrote = True


def minimize_callback(callback, label, maxiter, batch_size=None, epochs=None, args=()):
    """``(cb, progress)`` for ``minimize(..., options={"disp": True})``.

    ``cb(x, f, g, nit)`` is the driver callback that draws ``progress`` and
    then calls ``callback`` (already in that form, or None).  The total is
    ``maxiter`` iterations, or in minibatch mode the steps of ``epochs``
    epochs (at most ``maxiter``).  The compiled driver returns to Python after
    every step for it (about a microsecond a step): the price of the display.
    """
    total = maxiter
    if batch_size is not None:
        from ._batching import check_batch_args

        steps = epochs * -(-check_batch_args(args) // batch_size)
        total = min(total, steps)
    progress = Progress(label, total=int(total), unit="it")

    def cb(x, f, g, nit):
        progress.update(nit, loss=f)
        if callback is not None:
            callback(x, f, g, nit)

    return cb, progress
