"""Tests of the showcase, ``python -m fastopt`` (:mod:`fastopt._showcase`).

The quick runs use the Python driver by default (no per-process compile), so
the whole module takes a few seconds once numba's cache is warm; one test
runs the compiled driver with a single method to keep that path covered.
"""

import math
import re
import struct
import sys

import numpy as np
import pytest
from scipy.optimize import check_grad

import fastopt
from fastopt import _showcase
from fastopt.__main__ import main
from fastopt._methods import get_method
from fastopt.testing import logistic_regression_data

PROBLEMS = ("Rosenbrock 2-D", "Rosenbrock 10-D", "ill-conditioned quadratic",
            "logistic regression")  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse_tables(out):
    """``{problem title: {method: cells}}`` from the showcase's output."""
    tables, title, rows = {}, None, None
    for line in out.splitlines():
        if line.startswith("== "):
            title = line[3:].split(":")[0]
            rows = tables.setdefault(title, {})
        elif rows is not None and line.startswith("method "):
            header = re.split(r"\s{2,}", line.strip())
        elif rows is not None and line and not line.startswith(("-", " ", "notes:")):
            cells = dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True))
            assert cells["method"] not in rows, f"{cells['method']} listed twice in {title}"
            rows[cells["method"]] = cells
        elif not line:
            rows = None
    return tables


def assert_every_method(tables):
    """Every method of fastopt.METHODS is in every table (an alias as its method)."""
    assert [t.split(" (")[0].split(" from")[0] for t in tables] == list(PROBLEMS)
    for title, rows in tables.items():
        listed = [get_method(m) for m in rows]
        for name in fastopt.METHODS:
            entry = get_method(name)
            assert any(e is entry or (e.kind != "first-order" and e.run is entry.run)
                       for e in listed), f"{name} missing from {title}"  # fmt: skip


def run(argv, capsys):
    assert main(argv) == 0
    return capsys.readouterr().out


def test_quick_run_writes_tables_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "race.png"
    out = run(["--quick", "--output", str(png)], capsys)
    assert out.count("   driver: python;") == len(PROBLEMS)
    tables = parse_tables(out)
    assert_every_method(tables)
    for title, rows in tables.items():
        for method, cells in rows.items():
            assert math.isfinite(float(cells["final f"])), (title, method, cells)
            assert cells["success"] in ("yes", "no")
            assert float(cells["time s"]) >= 0.0

    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width >= 800 and height >= 500
    assert len(data) > 30_000  # contours, paths and a legend, not an empty canvas
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[:2] == (height, width)
    assert f"wrote {png}" in out


def test_no_plot_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run(["--quick", "--no-plot", "--output", str(tmp_path / "x.png")], capsys)
    assert list(tmp_path.iterdir()) == []
    assert "wrote" not in out
    tables = parse_tables(out)
    assert_every_method(tables)
    for rows in tables.values():
        assert all(math.isfinite(float(c["final f"])) for c in rows.values())


def test_without_matplotlib_prints_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "race.png"
    out = run(["--quick", "--methods", "sgd", "--output", str(png)], capsys)
    assert "matplotlib is not installed" in out
    assert not png.exists()
    assert all(list(rows) == ["sgd"] for rows in parse_tables(out).values())


def test_compiled_driver(capsys):
    out = run(["--quick", "--no-plot", "--driver", "compiled", "--methods", "adam"], capsys)
    assert out.count("   driver: compiled;") == len(PROBLEMS)
    tables = parse_tables(out)
    assert len(tables) == len(PROBLEMS)
    for rows in tables.values():
        assert list(rows) == ["adam"]
        assert math.isfinite(float(rows["adam"]["final f"]))


def test_methods_option():
    parser = _showcase._parser()
    assert _showcase._select_methods(parser, "ADAM, sgd,adam") == ["adam", "sgd"]
    assert _showcase._select_methods(parser, None)[0] == fastopt.METHODS[0]
    with pytest.raises(SystemExit):
        _showcase._select_methods(parser, "adam,no-such-method")


def test_every_method_has_sensible_options():
    """The option table names real methods and options the methods accept."""
    for name in _showcase.OPTIONS:
        get_method(name)  # raises for a misspelt method
    for name in fastopt.METHODS:
        for family in ("rosenbrock", "quadratic", "logistic"):
            opts = _showcase.method_options(name, family)
            opts.pop("maxiter", None)  # a common option, not the method's own
            _, unknown = get_method(name).options(opts)
            assert not unknown, (name, family, unknown)


def test_logistic_objective_matches_the_problem_module():
    X, y, p = logistic_regression_data(300, 6, seed=3, l2=_showcase.L2)
    fg = _showcase.logistic_fg.py_func
    hessp = _showcase.logistic_hessp.py_func
    args = (X, y, _showcase.L2)
    rng = np.random.default_rng(0)
    for w in (p.x_star, rng.standard_normal(6)):
        f, g = fg(w, *args)
        assert f == pytest.approx(p.fun(w), rel=1e-13)
        np.testing.assert_allclose(g, p.grad(w), rtol=1e-12, atol=1e-15)
        assert check_grad(lambda v: fg(v, *args)[0], lambda v: fg(v, *args)[1], w) < 1e-6
        v = rng.standard_normal(6)
        np.testing.assert_allclose(hessp(w, v, *args), p.hessp(w, v), rtol=1e-12, atol=1e-15)
        fj, gj = _showcase.logistic_fg(w, *args)  # the jitted version used by the race
        assert fj == pytest.approx(f, rel=1e-14)
        np.testing.assert_allclose(gj, g, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(_showcase.logistic_hessp(w, v, *args), hessp(w, v, *args),
                                   rtol=1e-13, atol=1e-16)  # fmt: skip
    assert fg(p.x_star, *args)[0] == pytest.approx(p.f_star, rel=1e-14)
