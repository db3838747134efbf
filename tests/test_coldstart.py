"""What a first call compiles in a fresh process with an empty numba cache.

No timing here (``benchmarks/coldstart.py`` measures seconds): these tests
count what numba compiles, through its compile events, so that a change that
makes a first call compile more than it runs (every rule's kernel for one
Adam step, say) fails.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_LISTENER = """
import json, sys
import numba.core.event as ev
compiled = []

class Listener(ev.Listener):
    def on_start(self, event):
        pass

    def on_end(self, event):
        fn = event.data["dispatcher"].py_func
        compiled.append(f"{fn.__module__}.{fn.__qualname__}")

ev.register("numba:compile", Listener())
"""


def run_fresh(code, tmp_path, result):
    """Run ``code`` in a new process with the cache directory ``tmp_path/numba-cache``
    (empty on a first call) and return the JSON of the expression ``result`` there."""
    program = (
        textwrap.dedent(code)
        + f"\nimport json as _j, sys as _s\n_s.stdout.write('\\n@@' + _j.dumps({result}) + '\\n')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    line = [s for s in out.stdout.splitlines() if s.startswith("@@")][-1]
    return json.loads(line[2:])


def compiled_by(code, tmp_path):
    """Qualified names of what numba compiles while running ``code`` in a new
    process with an empty cache directory."""
    return run_fresh(_LISTENER + textwrap.dedent(code), tmp_path, "compiled")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cold_step_compiles_only_its_kernel(tmp_path, dtype):
    compiled = compiled_by(
        f"""
        import numpy as np
        import fastopt
        from fastopt.kernels import cpu
        opt = fastopt.optimizer("adam")
        x = np.ones(10, dtype=np.{dtype})
        state = opt.step(x, 2 * x, opt.init(x))
        # one signature of one kernel, the rule's own
        assert [len(k.signatures) for k in cpu.SERIAL].count(1) == 1
        assert len(cpu.SERIAL[opt.kid].signatures) == 1
        assert all(k is None for k in cpu.PARALLEL)
        """,
        tmp_path,
    )
    from fastopt import optimizer

    kid = optimizer("adam").kid
    # inlined functions (the rule's elem and coeffs) raise no compile event
    assert compiled == [f"fastopt.kernels.cpu.step_{kid}"]


def test_cold_minimize_first_order_compiles_step_and_checks(tmp_path):
    compiled = compiled_by(
        """
        import numpy as np
        import fastopt
        from scipy.optimize import rosen, rosen_der
        fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="rmsprop",
                         options={"maxiter": 5})
        """,
        tmp_path,
    )
    from fastopt import optimizer

    kid = optimizer("rmsprop").kid
    # the rule's step and the per-iteration check (the memo that keeps a point
    # from being evaluated twice in a row compares a short x's bytes: no kernel)
    assert sorted(compiled) == sorted(
        [f"fastopt.kernels.cpu.step_{kid}", "fastopt.drivers._checks.accept"]
    )


def test_cold_logistic_regression_compiles_its_loss_only(tmp_path):
    compiled = compiled_by(
        """
        import numpy as np
        from fastopt.models import LogisticRegression
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 3))
        LogisticRegression().fit(X, np.arange(40) % 3)
        """,
        tmp_path,
    )
    ours = [q for q in compiled if q.startswith("fastopt.")]
    # no fastopt function compiled twice (a second signature: another layout,
    # integer width or literal type of the same arguments)
    assert len(ours) == len(set(ours)), sorted(ours)
    linear = {q.rsplit(".", 1)[1] for q in ours if q.startswith("fastopt.models._linear_kernels.")}
    # the softmax loss alone, in centred coordinates: no kernel of all
    # losses (linear_fg), no other loss, no curvature kernel
    assert linear == {"_fg_of_loss_centered_softmax", "_exp_nonpositive", "from_centered",
                      "_grad_to_centered"}  # fmt: skip


def test_cold_bounded_lbfgs_compiles_each_kernel_once(tmp_path):
    """The L-BFGS-B kernels compile for one signature each, in the Python
    loop (a Python objective) and in the compiled one (an ``@njit`` one), and
    the Python loop compiles the reduced subspace system only when a run needs it.

    A literal ``0`` passed to a kernel, or a counter started at ``0`` that
    reaches one, is typed ``Literal[int](0)`` first and compiled the callee
    once more: ``reduced_step`` twice and ``heap_sift_down`` three times
    took the first call from 7 to 11 s of CPU (see ``_lbfgsb.INT0``).
    """
    compiled = compiled_by(
        """
        import numba
        import numpy as np
        import fastopt
        from fastopt.solvers import _lbfgsb

        def fg(x):
            return float(((x - 2.0) ** 2).sum()), 2 * (x - 2.0)

        # every variable at a bound at the first Cauchy point, then converged
        r = fastopt.minimize(fg, np.zeros(3), jac=True, method="lbfgs", bounds=[(0, 1)] * 3)
        assert np.array_equal(r.x, [1.0, 1.0, 1.0]), r.x
        assert not _lbfgsb.reduced_subspace_point.signatures
        fg_jit = numba.njit(fg)
        x0 = np.array([0.0, 0.5, 3.0])
        bounds = [(0, 1), (0, 3), (-1, 4)]
        for f in (fg, fg_jit):
            r = fastopt.minimize(f, x0, jac=True, method="lbfgs", bounds=bounds)
            assert np.array_equal(r.x, [1.0, 2.0, 2.0]), r.x
        """,
        tmp_path,
    )
    ours = [q for q in compiled if q.startswith("fastopt.")]
    assert len(ours) == len(set(ours)), sorted(ours)
    assert "fastopt.solvers._lbfgsb.reduced_subspace_point" in ours


def test_cold_and_cached_fits_agree_bit_for_bit(tmp_path):
    """A fit gives the same bits in a process that compiles its kernels and in
    one that loads them from numba's cache.

    A kernel called from a ``fastmath`` kernel inherited the caller's flags
    under its own symbol, so the caller's copy and the callee's own rounded
    differently and the process ran whichever it had loaded first:
    ``LogisticRegression().fit`` on digits took 214 iterations cold and 226
    warm (see ``fastopt.models._linear_kernels._exact_kernel``).
    """
    code = """
        import hashlib
        from sklearn.datasets import load_digits
        from fastopt.models import LogisticRegression
        X, y = load_digits(return_X_y=True)
        m = LogisticRegression().fit(X, y)
        h = hashlib.sha256(m.coef_.tobytes() + m.intercept_.tobytes()).hexdigest()
    """
    # the first compiles and fills the cache, the second loads
    cold = run_fresh(code, tmp_path, "[int(m.n_iter_), h]")
    warm = run_fresh(code, tmp_path, "[int(m.n_iter_), h]")
    assert cold == warm


def test_cold_mlp_compiles_its_case_only(tmp_path):
    compiled = compiled_by(
        """
        import warnings
        import numpy as np
        from fastopt.models import MLPClassifier
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter=2 does not converge
            MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, np.arange(40) % 3)
        """,
        tmp_path,
    )
    ours = [q for q in compiled if q.startswith("fastopt.")]
    assert len(ours) == len(set(ours)), sorted(ours)
    mlp = {q.rsplit(".", 1)[1] for q in ours if q.startswith("fastopt.models._mlp_kernels.")}
    # the loss and gradient of a network without batch normalisation or
    # dropout (fg_kernel), its two passes compiled once each: not mlp_fg
    # with every case, no curvature kernel, no second forward pass for the
    # final loss
    assert mlp == {"mlp_fg_nobn", "_forward_nobn", "_backward_nobn", "_view", "seed"}


def test_precompile_fills_the_cache(tmp_path):
    # ``python -m fastopt precompile adam``, then a new process compiles nothing
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run(
        [sys.executable, "-m", "fastopt", "precompile", "adam"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "precompiled 3 items" in out.stdout
    compiled = compiled_by(
        """
        import numpy as np
        import fastopt
        from scipy.optimize import rosen, rosen_der
        opt = fastopt.optimizer("adam")
        for dtype in (np.float64, np.float32):
            x = np.ones(10, dtype=dtype)
            opt.step(x, 2 * x, opt.init(x))
        fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="adam",
                         options={"maxiter": 5})
        """,
        tmp_path,
    )
    assert compiled == []


def test_precompile_rejects_unknown_methods():
    out = subprocess.run(
        [sys.executable, "-m", "fastopt", "precompile", "adamm"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown method(s) adamm" in out.stderr


def test_version():
    import fastopt

    out = subprocess.run(
        [sys.executable, "-m", "fastopt", "--version"], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == f"fastopt {fastopt.__version__}"


def _fastopt_modules():
    import importlib
    import pkgutil

    import fastopt

    for info in pkgutil.walk_packages(fastopt.__path__, "fastopt."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional extra (CUDA, dask) not installed
            continue


def test_kernels_called_from_fastmath_code_set_their_own_flags():
    """The rule behind :func:`test_cold_and_cached_fits_agree_bit_for_bit`, for
    every module: where a module compiles kernels with value-changing
    ``fastmath`` flags, each kernel that a function of it calls (not inlined
    by numba) sets ``fastmath`` itself (or it inherits the caller's under its
    own symbol) and none that changes values (a copy linked into the caller
    and optimised again may then round differently from the callee's own)."""
    import inspect
    import re

    from numba.core.registry import CPUDispatcher

    changing = {"reassoc", "arcp", "afn", "fast"}

    def flags(d):
        fm = d.targetoptions.get("fastmath")
        if fm is None or isinstance(fm, bool):
            return fm if fm is None else ({"fast"} if fm else set())
        return set(fm)

    bad, checked = [], 0
    for mod in _fastopt_modules():
        kernels = {k: v for k, v in vars(mod).items() if isinstance(v, CPUDispatcher)}
        own = [d for d in kernels.values() if d.py_func.__module__ == mod.__name__]
        if not any((flags(d) or set()) & changing for d in own):
            continue
        # the bodies of the module's functions, docstrings and def lines left out
        bodies = []
        for v in vars(mod).values():
            fn = getattr(v, "py_func", v)
            if inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                code = inspect.getsource(fn).split(":\n", 1)[-1]
                bodies.append(re.sub(r'r?"""[\s\S]*?"""', "", code))
        body = "\n".join(bodies)
        for name, d in kernels.items():
            if d.targetoptions.get("inline") == "always":
                continue
            if not re.search(rf"(?<![\w.]){re.escape(name)}\(", body):
                continue
            checked += 1
            f = flags(d)
            if f is None or f & changing:
                bad.append(f"{mod.__name__}.{name}: fastmath={f}")
    assert checked >= 2  # from_centered and _grad_to_centered at least
    assert not bad, bad
