"""Compiled solver loops are cached to disk when the user's functions are.

The loops with the user's functions built in (``fastopt._jit.bound_loop``)
are cached when every function is an ``@njit(cache=True)`` dispatcher from a
file (or fastopt's glue around one): a new process then loads the loop
instead of compiling it.  An edit of the user's file must not load a loop
compiled with the old code: the loop's stamp includes the files of the
functions built in.  Each case runs in fresh processes with its own
``NUMBA_CACHE_DIR``.
"""

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastopt import _jit
from fastopt._user import _glue

USER_MODULE = """
import numba

SCALE = {scale}


@numba.njit(cache={cache})
def fg(x):
    e = x - SCALE
    return 0.5 * (e @ e), e
"""

OPTIONS = {
    "sgd": {"maxiter": 3, "learning_rate": 0.1},
    "lbfgs": {"maxiter": 3},
    "scg": {"maxiter": 3},
    "hessian-free": {"maxiter": 2},
    "adahessian": {"maxiter": 3},
}

SCRIPT = """
import json, sys, warnings
from numba.core.errors import NumbaWarning
warnings.simplefilter("error", NumbaWarning)  # "Cannot cache ..."
sys.path.insert(0, {dir!r})
import numpy as np
import fastopt
import usermod
from fastopt.drivers import first_order
from fastopt.solvers import lbfgs

from fastopt.solvers import adahessian, hessian_free, scg

method = {method!r}
res = fastopt.minimize(usermod.fg, np.zeros(3), jac=True, method=method, options=OPTIONS[method])
if method == "sgd":
    loops = [loop for pair in first_order._COMPILED.values() for loop, _ in pair]
else:
    module = {{"lbfgs": lbfgs, "scg": scg, "hessian-free": hessian_free,
              "adahessian": adahessian}}[method]
    loops = [loop for loop, _ in module._LOOP._bound.values()]
used = [loop for loop in loops if loop.signatures]
print(json.dumps({{
    "x": res.x.tolist(),
    "hits": sum(sum(loop.stats.cache_hits.values()) for loop in used),
    "misses": sum(sum(loop.stats.cache_misses.values()) for loop in used),
    "cached": [type(loop._cache).__name__ for loop in used],
}}))
"""


def _write_module(path, scale, cache=True):
    path.write_text(USER_MODULE.format(scale=scale, cache=cache))
    # a distinct mtime even on a coarse-grained file system
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _run(tmp_path, method):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    script = f"OPTIONS = {OPTIONS!r}\n" + textwrap.dedent(
        SCRIPT.format(dir=str(tmp_path), method=method)
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True, timeout=300)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _python_run(method, scale):
    """The same run with Python callables: what a loop with the new code gives."""
    import fastopt

    def fg(x):
        e = x - scale
        return 0.5 * (e @ e), e

    res = fastopt.minimize(fg, np.zeros(3), jac=True, method=method, options=OPTIONS[method])
    return res.x


@pytest.mark.parametrize("method", list(OPTIONS))
def test_loop_cached_and_invalidated_by_an_edit(tmp_path, method):
    module = tmp_path / "usermod.py"
    _write_module(module, 1.0)
    first = _run(tmp_path, method)
    assert first["cached"] == ["FunctionCache"]
    assert first["misses"] == 1 and first["hits"] == 0
    second = _run(tmp_path, method)
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["x"] == first["x"]
    # the user edits the objective: the loop is compiled again, with the new code
    _write_module(module, 1.5)
    third = _run(tmp_path, method)
    assert third["misses"] == 1 and third["hits"] == 0
    for out, scale in ((first, 1.0), (third, 1.5)):
        # compiled and Python drivers give the same iterates
        np.testing.assert_allclose(out["x"], _python_run(method, scale), rtol=1e-12)
    if method == "sgd":  # from x_0 = 0: x_k = (1 - (1 - lr)^k) SCALE
        np.testing.assert_allclose(third["x"], [(1.0 - 0.9**3) * 1.5] * 3, rtol=1e-12)
    assert third["x"] != first["x"]
    assert _run(tmp_path, method)["hits"] == 1


def test_loop_not_cached_for_uncached_functions(tmp_path):
    _write_module(tmp_path / "usermod.py", 1.0, cache=False)
    out = _run(tmp_path, "sgd")
    assert out["cached"] == ["NullCache"]
    np.testing.assert_allclose(out["x"], [1.0 - 0.9**3] * 3, rtol=1e-12)


@numba.njit(cache=True)
def _cached_fg(x):
    return x @ x, 2.0 * x


@numba.njit
def _plain_fg(x):
    return x @ x, 2.0 * x


def test_no_cache_without_fastopt_locators(monkeypatch):
    # if numba's internals moved and the stamp locators are not installed,
    # the loop is compiled per process rather than cached without its stamps
    monkeypatch.setattr(_jit, "_STAMPS_INSTALLED", False)

    def loop(x):
        return _cached_fg(x)[0]

    assert type(_jit.bound_loop(loop, (_cached_fg,))._cache).__name__ == "NullCache"
    monkeypatch.undo()
    assert _jit._STAMPS_INSTALLED


def test_cache_identity():
    names, stamps = _jit.cache_identity((_cached_fg, None))
    assert names[0][:2] == (__name__, "_cached_fg") and names[1] is None
    assert stamps[0] == (os.stat(__file__).st_mtime_ns, os.stat(__file__).st_size)
    # fastopt's glue around a cached function counts as that function
    glue_names, _ = _jit.cache_identity((_glue("f_only", _cached_fg),))
    assert glue_names == ("f_only", names[0])
    # not cached: a dispatcher without cache=True, a Python function, glue around either
    assert _jit.cache_identity((_plain_fg,)) is None
    assert _jit.cache_identity((_cached_fg, _plain_fg)) is None
    assert _jit.cache_identity((lambda x: x,)) is None
    assert _jit.cache_identity((_glue("f_only", _plain_fg),)) is None
    # a closure: two instances share a name, not their cells
    assert _jit.cache_identity((_make_closure(2.0),)) is None


def _make_closure(scale):
    @numba.njit(cache=True)
    def fg(x):
        return scale * (x @ x), 2.0 * scale * x

    return fg
