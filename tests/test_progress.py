"""The progress display shared by ``disp``, ``verbose`` and the showcase."""

import io

import numpy as np
import pytest

import fastopt
from fastopt import _progress
from fastopt._progress import Progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = Progress("adam", total=4, unit="it", file=out, plain=True)
    for t in range(1, 5):
        bar.update(t, loss=10.0 / t)
    bar.close()
    bar.close()  # idempotent: one final line
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("adam: [#####...............] 1/4 it  loss 10")
    assert lines[-1].startswith("adam: [####################] 4/4 it  loss 2.5, ")
    assert lines[-1].endswith(" s")
    assert len(lines) == 2  # the first update, then the finished one (no duplicate)
    assert out.getvalue().endswith("\n")


def test_plain_redraws_in_place_on_a_terminal():
    out = _Tty()
    bar = Progress("fit", total=None, unit="epochs", file=out, plain=True)
    bar.update(3, loss=0.5, note="rmsprop")
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rfit: 3 epochs  rmsprop, loss 0.5, ")
    assert text.endswith("\n") and text.count("\n") == 1


def test_tqdm_when_installed():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with Progress("adam", total=2, unit="it", file=out) as bar:
        bar.update(1, loss=2.0)
        bar.update(2, loss=1.0)
    text = out.getvalue()
    assert "2/2" in text and "loss 1" in text and text.endswith("\n")


def test_minimize_disp_shows_progress(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)  # the plain display
    fastopt.minimize(
        lambda x: float(x @ x),
        np.ones(3),
        jac=lambda x: 2 * x,
        method="sgd",
        options={"maxiter": 7, "disp": True},
    )
    out = capsys.readouterr().out
    assert "sgd: [####################] 7/7 it  loss " in out
    assert "Iterations: 7" in out
    # minibatch mode: the total is the steps of the epochs
    A = np.ones((10, 2))
    fastopt.minimize(
        lambda x, A: (float(x @ x), 2 * x),
        np.ones(2),
        args=(A,),
        jac=True,
        method="adam",
        options={"batch_size": 4, "epochs": 2, "disp": True},
    )
    assert "adam: [####################] 6/6 it" in capsys.readouterr().out


def test_silent_by_default(capsys):
    fastopt.minimize(
        lambda x: float(x @ x),
        np.ones(3),
        jac=lambda x: 2 * x,
        method="sgd",
        options={"maxiter": 7},
    )
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
