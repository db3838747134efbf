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


def compiled_by(code, tmp_path):
    """Qualified names of what numba compiles while running ``code`` in a new
    process with an empty cache directory."""
    program = (
        _LISTENER
        + textwrap.dedent(code)
        + "\nsys.stdout.write('\\n@@' + json.dumps(compiled) + '\\n')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    line = [s for s in out.stdout.splitlines() if s.startswith("@@")][-1]
    return json.loads(line[2:])


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
