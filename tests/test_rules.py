"""Tests of the first-order update rules, their compiled kernels and the optimizer API.

* every rule and variant against the naive NumPy reference in ``naive.py``
  (written from ``update-rules.md``), float64 at rtol 1e-12 and float32;
* the compiled switch kernel against the rules' plain-Python ``coeffs``/``elem``
  (guards the kernel-id switch in ``kernels/cpu.py``);
* parallel == serial bit for bit; save/resume bit for bit; schedules;
* every error message from one table; hypothesis properties.

``CASES`` covers every entry of ``fastopt.rules.KERNEL_TABLE``
(``test_cases_cover_every_kernel``), so a new rule or variant cannot slip
through untested.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import check_grad

import fastopt
from fastopt import schedules
from fastopt.kernels import cpu
from fastopt.rules import KERNEL_IDS, KERNEL_TABLE, RULES

# --------------------------------------------------------------------------
# The cases: every method, every kernel, default and non-default options
# --------------------------------------------------------------------------
RPROP = dict(learning_rate=0.05, eta_minus=0.4, eta_plus=1.3, min_step=1e-4, max_step=0.5)
ADAM = dict(learning_rate=0.05, b1=0.8, b2=0.99, eps=1e-7)
RMS = dict(learning_rate=0.03, decay=0.9, weight_decay=0.05)

CASES = {
    "sgd": ("sgd", dict(learning_rate=0.05)),
    "sgd-wd": ("sgd", dict(learning_rate=0.05, weight_decay=0.1)),
    "momentum": ("momentum", dict(learning_rate=0.02)),
    "momentum-damp-wd": (
        "momentum",
        dict(learning_rate=0.02, momentum=0.8, dampening=0.3, weight_decay=0.05),
    ),
    "nag": ("nag", dict(learning_rate=0.02)),
    "nag-wd": ("nag", dict(learning_rate=0.02, momentum=0.85, weight_decay=0.05)),
    "rprop-defaults": ("rprop", {}),
    "irprop-": ("rprop", dict(RPROP, variant="irprop-")),
    "rprop-": ("rprop", dict(RPROP, variant="rprop-")),
    "rprop+": ("rprop", dict(RPROP, variant="rprop+")),
    # the initial step (1.0) lies above max_step: clipped on the first update too
    "rprop+-clip-first": ("rprop", dict(RPROP, learning_rate=1.0, variant="rprop+")),
    "irprop+": ("rprop", dict(RPROP, variant="irprop+")),
    "adagrad": ("adagrad", dict(learning_rate=0.3)),
    "adagrad-decay-init-wd": (
        "adagrad",
        dict(
            learning_rate=0.3,
            lr_decay=0.01,
            initial_accumulator_value=0.2,
            eps=1e-8,
            weight_decay=0.05,
        ),
    ),
    "rmsprop": ("rmsprop", dict(learning_rate=0.03)),
    "rmsprop-wd": ("rmsprop", dict(RMS, eps=1e-6)),
    # centered: eps 1e-2, see update-rules.md (sqrt(v - gbar^2) -> 0)
    "rmsprop-centered": ("rmsprop", dict(RMS, eps=1e-2, centered=True)),
    "rmsprop-momentum": ("rmsprop", dict(RMS, eps=1e-6, momentum=0.5)),
    "rmsprop-centered-momentum": ("rmsprop", dict(RMS, eps=1e-2, momentum=0.5, centered=True)),
    "adadelta": ("adadelta", {}),
    "adadelta-wd": ("adadelta", dict(learning_rate=5.0, rho=0.85, eps=1e-5, weight_decay=0.05)),
    "adam": ("adam", dict(learning_rate=0.05)),
    "adam-wd": ("adam", dict(ADAM, weight_decay=0.05)),
    "amsgrad-wd": ("adam", dict(ADAM, weight_decay=0.05, amsgrad=True)),
    # b1 = b2 = 0: no averaging, and both bias corrections are exactly 1
    "adam-b1-b2-zero": ("adam", dict(learning_rate=0.05, b1=0.0, b2=0.0)),
    "adam-decoupled": ("adam", dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True)),
    "amsgrad-decoupled": (
        "adam",
        dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
    ),
    "adamw": ("adamw", dict(learning_rate=0.05)),
    "adamw-wd": ("adamw", dict(learning_rate=0.05, weight_decay=0.1)),
    "adamax": ("adamax", dict(learning_rate=0.05)),
    "adamax-wd": ("adamax", dict(ADAM, weight_decay=0.05)),
    "nadam": ("nadam", dict(learning_rate=0.05)),
    "nadam-wd-psi": (
        "nadam",
        dict(ADAM, weight_decay=0.05, momentum_decay=0.01),
    ),
    "nadamw": ("nadam", dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True)),
    # b2 = 0.9: rho_inf = 19, so the rectified branch starts at step 6 of 150
    "radam": ("radam", dict(learning_rate=0.05, b2=0.9)),
    "radam-wd": ("radam", dict(ADAM, weight_decay=0.05)),
    "radam-decoupled-max": (
        "radam",
        dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
    ),
    # maximize: run on the negated problem (see run_fastopt), so x tracks the
    # same minimum; weight decay shows the sign is applied before it
    "sgd-wd-max": ("sgd", dict(learning_rate=0.05, weight_decay=0.1, maximize=True)),
    "irprop+-max": ("rprop", dict(RPROP, variant="irprop+", maximize=True)),
    "adam-decoupled-max": (
        "adam",
        dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
    ),
}
CASE_IDS = list(CASES)
PROBLEM = naive.MovingTarget()
#: one case per kernel (the first in CASES), for the per-kernel tests
KERNEL_CASE = {}
for _cid, (_m, _h) in CASES.items():
    KERNEL_CASE.setdefault(fastopt.optimizer(_m, **_h).key, _cid)


def needs_value(hyper):
    return hyper.get("variant") == "irprop+"


class Negated:
    """``-f``: what a ``maximize=True`` case climbs (the same point as min f)."""

    def __init__(self, problem):
        self.problem = problem
        self.x0 = problem.x0

    def fun(self, x, k):
        return -self.problem.fun(x, k)

    def grad(self, x, k):
        return -self.problem.grad(x, k)


def run_fastopt(method, hyper, x0, steps, problem=PROBLEM, schedule=None, parallel=False):
    """``steps`` updates with fastopt: ``(trajectory (steps, n), final state, optimizer)``."""
    opt = fastopt.optimizer(method, schedule=schedule, parallel=parallel, **hyper)
    if hyper.get("maximize"):
        problem = Negated(problem)
    x = np.array(x0, copy=True)
    state = opt.init(x)
    traj = np.empty((steps, x.shape[0]), dtype=x.dtype)
    for k in range(steps):
        value = problem.fun(x, k) if needs_value(hyper) else None
        state = opt.step(x, problem.grad(x, k), state, value=value)
        traj[k] = x
    return traj, state, opt


def run_naive(method, hyper, x0, steps, lrs=None):
    problem = Negated(PROBLEM) if hyper.get("maximize") else PROBLEM
    fun = problem.fun if needs_value(hyper) else None
    return naive.run(method, x0, problem.grad, steps, lrs=lrs, fun=fun, **hyper)


@pytest.mark.parametrize("key", list(KERNEL_IDS))
def test_maximize_negated_problem_is_bit_identical(key):
    """maximize=True on -f takes exactly the steps of minimizing f (-(-g) is exact)."""
    method, hyper = CASES[KERNEL_CASE[key]]
    hyper = {k: v for k, v in hyper.items() if k != "maximize"}
    plain, s1, _ = run_fastopt(method, hyper, PROBLEM.x0, 20)
    up, s2, _ = run_fastopt(method, dict(hyper, maximize=True), PROBLEM.x0, 20)
    assert_array_equal(plain, up)
    assert_array_equal(s2.slots, s1.slots)  # rprop's prev: -(-g) = g as well


def assert_close(actual, desired, rtol):
    """Elementwise ``rtol``, with an absolute floor of ``rtol * max|desired|``
    for coordinates that pass through zero (where any relative test fails)."""
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max())


# --------------------------------------------------------------------------
# Coverage and the test problem itself
# --------------------------------------------------------------------------
def test_cases_cover_every_kernel():
    keys = {fastopt.optimizer(m, **h).key for m, h in CASES.values()}
    assert keys == set(KERNEL_IDS) == {key for key, _ in KERNEL_TABLE}
    assert {m for m, _ in CASES.values()} == set(RULES) == set(naive.NAIVE)


@pytest.mark.parametrize("method", list(RULES))
def test_defaults_match_update_rules(method):
    # naive.NAIVE's defaults are copied from the table in update-rules.md
    expected = {**naive.NAIVE[method].defaults, "maximize": False}
    assert fastopt.optimizer(method).hyper._asdict() == expected


def test_problem_gradient():
    # style.md item 13: check the test objective's own gradient
    for k in (0, 7, 150):
        g = PROBLEM.grad(PROBLEM.x0, k)
        err = check_grad(PROBLEM.fun, PROBLEM.grad, PROBLEM.x0 + 0.1, k)
        assert err < 1e-6 * np.linalg.norm(g)
    assert PROBLEM.grad(PROBLEM.x0.astype(np.float32), 3).dtype == np.float32


# --------------------------------------------------------------------------
# Against the naive reference
# --------------------------------------------------------------------------
STEPS = 150
#: float32: both sides round every operation to float32, in different orders;
#: measured worst 1.8e-7 (amsgrad-decoupled; float32 eps is 1.2e-7) over 150 steps
F32_RTOL = 2e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cid", CASE_IDS)
def test_matches_reference(cid, dtype):
    method, hyper = CASES[cid]
    x0 = PROBLEM.x0.astype(dtype)
    traj, state, opt = run_fastopt(method, hyper, x0, STEPS)
    _, ref, ref_state = run_naive(method, hyper, x0, STEPS)
    rtol = 1e-12 if dtype == np.float64 else F32_RTOL
    assert_close(traj, ref, rtol)
    assert state.count == STEPS
    for name in opt.slot_names:
        assert_close(state[name], ref_state[name], rtol)
    # it moved: the test is not comparing two copies of x0
    assert np.abs(traj[-1] - x0).max() > 0.5
    # float32 stays float32: x, every slot, every saved array
    assert traj.dtype == dtype and ref.dtype == dtype
    assert state.slots.dtype == dtype
    for name, value in state.to_dict().items():
        if name in ("mu_product",):  # a float64 scalar whatever the dtype of x
            assert value == ref_state[name] and isinstance(value, float), name
        elif name not in ("count", "last_value", "kernel"):
            assert value.dtype == dtype, name


def _rprop_branches(hyper):
    """Count, over the reference run, the sign changes and (iRprop+) the error rises."""
    x = PROBLEM.x0.copy()
    s = naive.init("rprop", x, **hyper)
    flips = rises = 0
    last = math.nan
    for k in range(STEPS):
        g, f = PROBLEM.grad(x, k), PROBLEM.fun(x, k)
        n_flip = int(np.sum(g * s["prev"] < 0))
        flips += n_flip
        rises += n_flip > 0 and f > last
        last = f
        x = naive.step("rprop", x, g, s, k + 1, value=f, **hyper)
    return flips, rises


def test_reference_runs_exercise_every_branch():
    """The trajectories above reach the branches that distinguish the variants."""
    for variant in ("irprop-", "rprop-", "rprop+", "irprop+"):
        flips, rises = _rprop_branches(dict(RPROP, variant=variant))
        assert flips > 50, variant  # sign changes: zeroing / backtracking happens
        if variant == "irprop+":
            assert 0 < rises < flips  # sign changes with E going up and with E going down
    # the four variants give four different trajectories
    finals = {
        v: run_naive("rprop", dict(RPROP, variant=v), PROBLEM.x0, STEPS)[0].tobytes()
        for v in ("irprop-", "rprop-", "rprop+", "irprop+")
    }
    assert len(set(finals.values())) == 4
    # amsgrad: the running max is strictly above v somewhere; decoupled != coupled
    _, _, s = run_naive("adam", CASES["amsgrad-wd"][1], PROBLEM.x0, STEPS)
    assert np.any(s["max_exp_avg_sq"] > s["exp_avg_sq"])
    a = run_naive("adam", CASES["adam-decoupled"][1], PROBLEM.x0, STEPS)[0]
    b = run_naive("adam", dict(ADAM, weight_decay=0.1), PROBLEM.x0, STEPS)[0]
    assert np.abs(a - b).max() > 1e-3
    # adamax: both arms of max(b2*u, |g| + eps) are taken in the last step
    x, _, s = run_naive("adamax", CASES["adamax-wd"][1], PROBLEM.x0, STEPS - 1)
    g = PROBLEM.grad(x, STEPS - 1) + 0.05 * x
    decayed = 0.99 * s["exp_inf"]
    assert np.any(decayed > np.abs(g) + 1e-7) and np.any(decayed < np.abs(g) + 1e-7)


# --------------------------------------------------------------------------
# The compiled switch kernel against the plain-Python rule functions
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("key", list(KERNEL_IDS))
def test_compiled_kernel_matches_python_rule(key, dtype):
    """``cpu.step(kid, ...)`` runs exactly the rule's ``coeffs`` and ``elem``.

    A wrong branch in the kernel-id switch (or a compiled kernel that no
    longer matches the rule's source) shows up here.  The coefficient vector
    the kernel fills must equal the Python ``coeffs`` bit for bit; float64
    elements too.  In float32 the plain-Python ``elem`` is not a faithful
    float32 emulation (``math.sqrt`` returns a Python float, so quotients
    are rounded to float64 first), hence rtol 1e-6 (a few float32 ulps) there.
    """
    method, hyper = CASES[KERNEL_CASE[key]]
    opt = fastopt.optimizer(method, **hyper)
    assert opt.key == key
    kid = KERNEL_IDS[key]
    kern = KERNEL_TABLE[kid][1]
    rng = np.random.default_rng(kid)
    n = 19
    x = rng.standard_normal(n).astype(dtype)
    S = opt.init(x).slots
    xp, Sp = x.copy(), S.copy()
    for t in range(1, 7):
        g = rng.standard_normal(n).astype(dtype)
        lr, aux = 0.01 * t, float(t % 2)
        c = np.full(cpu.N_COEFFS, np.nan, dtype=dtype)
        cpu.step(kid, x, g, S, opt.h, t, lr, aux, c)
        cp = np.full(cpu.N_COEFFS, np.nan, dtype=dtype)
        kern.coeffs(opt.h, t, lr, aux, cp)
        assert_array_equal(c, cp, err_msg=f"coefficients of step {t}")
        for i in range(n):
            kern.elem(i, xp, g, Sp, cp)
        if dtype == np.float64:
            assert_array_equal(x, xp, err_msg=f"x after step {t}")
            assert_array_equal(S, Sp, err_msg=f"state after step {t}")
        else:
            assert_allclose(x, xp, rtol=1e-6, atol=1e-30)
            assert_allclose(S, Sp, rtol=1e-6, atol=1e-30)
            xp, Sp = x.copy(), S.copy()  # no drift between the two
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(S))


def test_kernel_cache_follows_rule_sources(tmp_path):
    """Editing a rule must change what the cached kernels compute.

    The kernels in ``kernels/cpu.py`` inline the rules' ``coeffs``/``elem``
    from other modules, but numba's on-disk cache checks only the kernel's
    own file (``kernels/cpu.py``).  Compile once in a fresh process (fills
    the cache), edit ``rules/sgd.py`` (``c[0] = lr`` -> ``c[0] = 2.0 * lr``),
    and a new process must compute the new coefficient.  ``cpu.coefficients``
    is used because it compiles in ~1 s; ``cpu.step`` (what ``opt.step``
    runs) is cached the same way and goes stale the same way.
    """
    src = Path(fastopt.__file__).parent
    shutil.copytree(src, tmp_path / "fastopt", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "nbc")}
    script = textwrap.dedent(
        f"""
        import numpy as np, fastopt
        from fastopt.kernels import cpu
        from fastopt.rules import KERNEL_IDS
        assert fastopt.__file__.startswith({str(tmp_path)!r})
        h = fastopt.optimizer("sgd").h
        print(cpu.coefficients(KERNEL_IDS["sgd"], h, 1, 1.0, 0.0, np.float64)[0])
        """
    )

    def sgd_lr_coefficient():
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.split()[-1])

    assert sgd_lr_coefficient() == 1.0
    sgd = tmp_path / "fastopt" / "rules" / "sgd.py"
    text = sgd.read_text()
    assert "    c[0] = lr\n" in text
    sgd.write_text(text.replace("    c[0] = lr\n", "    c[0] = 2.0 * lr\n"))
    assert sgd_lr_coefficient() == 2.0, "stale kernel: numba's cache ignored the edited rule"


# --------------------------------------------------------------------------
# Parallel == serial, bit for bit
# --------------------------------------------------------------------------
class Bowl:
    """``f_k(x) = sum(d/2 (x - s_k c)^2)`` with ``s_k`` = 1, -0.5, 1, ...: float32
    throughout and cheap at n = PARALLEL_MIN_SIZE, and its gradient signs flip (Rprop)."""

    def __init__(self, n):
        self.d = np.linspace(0.5, 4.0, n, dtype=np.float32)
        self.c = np.linspace(-3.0, 3.0, n, dtype=np.float32)
        self.x0 = np.linspace(2.0, -2.0, n, dtype=np.float32)

    def _r(self, x, k):
        return x - (1.0 if k % 2 == 0 else -0.5) * self.c

    def grad(self, x, k):
        return self.d * self._r(x, k)

    def fun(self, x, k):
        r = self._r(x, k)
        return 0.5 * float(np.dot(self.d * r, r))


@pytest.fixture(scope="module")
def big_problem():
    return Bowl(cpu.PARALLEL_MIN_SIZE)


@pytest.mark.parametrize("key", list(KERNEL_IDS))
def test_parallel_equals_serial(key, big_problem, monkeypatch):
    method, hyper = CASES[KERNEL_CASE[key]]
    x0 = big_problem.x0
    assert x0.dtype == np.float32 and x0.shape[0] >= cpu.PARALLEL_MIN_SIZE
    calls = []
    parallel_kernel = cpu.step_parallel

    def spy(*args):
        calls.append(1)
        return parallel_kernel(*args)

    serial, s_state, _ = run_fastopt(method, hyper, x0, 3, problem=big_problem)
    monkeypatch.setattr(cpu, "step_parallel", spy)
    par, p_state, _ = run_fastopt(method, hyper, x0, 3, problem=big_problem, parallel=True)
    assert len(calls) == 3  # the parallel kernel really ran
    assert par.dtype == np.float32
    assert_array_equal(par, serial)
    assert_array_equal(p_state.slots, s_state.slots)
    assert not np.array_equal(serial[-1], x0)


# --------------------------------------------------------------------------
# Save and resume
# --------------------------------------------------------------------------
RESUME_CASES = {
    **{cid: (*CASES[cid], None, np.float64) for cid in CASE_IDS},
    "adam-cosine": (*CASES["adam-wd"], schedules.cosine(30, min_lr=1e-3), np.float64),
    "adagrad-inverse-time": (
        *CASES["adagrad-decay-init-wd"],
        schedules.inverse_time(0.1),
        np.float64,
    ),
    "irprop+-f32": (*CASES["irprop+"], None, np.float32),
    "amsgrad-f32": (*CASES["amsgrad-wd"], None, np.float32),
}


@pytest.mark.parametrize("cid", list(RESUME_CASES))
def test_save_resume_bit_for_bit(cid, tmp_path):
    method, hyper, schedule, dtype = RESUME_CASES[cid]
    k = 20
    x0 = PROBLEM.x0.astype(dtype)

    def steps(opt, x, state, ks):
        for j in ks:
            value = PROBLEM.fun(x, j) if needs_value(hyper) else None
            state = opt.step(x, PROBLEM.grad(x, j), state, value=value)
        return state

    # uninterrupted
    opt = fastopt.optimizer(method, schedule=schedule, **hyper)
    x_full = x0.copy()
    full = steps(opt, x_full, opt.init(x_full), range(2 * k))

    # k steps, save, load into a new optimizer (as a new process would), k more
    opt1 = fastopt.optimizer(method, schedule=schedule, **hyper)
    x = x0.copy()
    half = steps(opt1, x, opt1.init(x), range(k))
    np.savez(tmp_path / "state.npz", x=x, **half.to_dict())
    del x, half
    opt2 = fastopt.optimizer(method, schedule=schedule, **hyper)
    with np.load(tmp_path / "state.npz") as d:
        x = d["x"].copy()
        resumed = opt2.state_from_dict(d)
    assert resumed.count == k
    resumed = steps(opt2, x, resumed, range(k, 2 * k))

    assert resumed.count == full.count == 2 * k
    assert x.dtype == dtype
    assert_array_equal(x, x_full)
    assert resumed.names == full.names
    for name in full.names:
        assert_array_equal(resumed[name], full[name], err_msg=name)
    assert resumed.scalars == full.scalars  # NAdam's mu_product, saved and restored
    if needs_value(hyper):
        assert resumed.last_value == full.last_value


# --------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------
def _lrs(kind, base, steps):
    """The learning rate of updates t = 0, 1, ... written from the schedule table."""
    t = np.arange(steps)
    if kind == "constant":
        return np.full(steps, base)
    if kind == "step_decay":
        return base * 0.5 ** (t // 7)
    if kind == "exponential":
        return base * 0.97**t
    if kind == "inverse_time":
        return base / (1 + 0.05 * t)
    if kind == "cosine":
        u = np.minimum(t, 60) / 60
        return 1e-3 + (base - 1e-3) * (1 + np.cos(np.pi * u)) / 2
    if kind == "callable":
        return 0.04 / (1 + 0.1 * t) + 0.01 * (t % 3)
    raise AssertionError(kind)


SCHEDULES = {
    "constant": lambda: schedules.constant(),
    "step_decay": lambda: schedules.step_decay(7, 0.5),
    "exponential": lambda: schedules.exponential(0.97),
    "inverse_time": lambda: schedules.inverse_time(0.05),
    "cosine": lambda: schedules.cosine(60, min_lr=1e-3),
    "callable": lambda: lambda t: 0.04 / (1 + 0.1 * t) + 0.01 * (t % 3),
}
SCHEDULED_CASES = [cid for cid in CASE_IDS if CASES[cid][0] != "rprop"]


def test_schedules_cover_module():
    public = {name for name in schedules.__all__ if name != "Schedule"}
    assert public == set(SCHEDULES) - {"callable"}


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("cid", SCHEDULED_CASES)
def test_schedule_matches_reference(cid, kind):
    method, hyper = CASES[cid]
    steps = 100
    opt = fastopt.optimizer(method, **hyper)
    lrs = _lrs(kind, opt.base_lr, steps)
    traj, _, opt = run_fastopt(method, hyper, PROBLEM.x0, steps, schedule=SCHEDULES[kind]())
    assert_allclose([opt.lr(t) for t in range(steps)], lrs, rtol=1e-15)
    _, ref, _ = run_naive(method, hyper, PROBLEM.x0, steps, lrs=[float(v) for v in lrs])
    assert_close(traj, ref, 1e-12)
    if kind != "constant":  # the schedule made a difference
        plain, _, _ = run_fastopt(method, hyper, PROBLEM.x0, steps)
        assert np.abs(plain - traj).max() > 1e-6


def test_inverse_time_starts_at_t0():
    # lr / (1 + k t) with t = 0 on the first update: exact steps 1, 1/2, 1/3 ...
    opt = fastopt.optimizer("sgd", learning_rate=1.0, schedule=schedules.inverse_time(1.0))
    x = np.zeros(2)
    state = opt.init(x)
    moved = []
    for _ in range(4):
        before = x[0]
        state = opt.step(x, np.ones(2), state)
        moved.append(before - x[0])
    assert_allclose(moved, [1.0, 1 / 2, 1 / 3, 1 / 4], rtol=1e-15)
    assert moved[0] == 1.0


@pytest.mark.parametrize(
    "make, regex",
    [
        (lambda: schedules.step_decay(0), "Invalid step value: 0"),
        (lambda: schedules.step_decay(2.5), "Invalid step value: 2.5"),
        (lambda: schedules.step_decay(3, gamma=1.5), "Invalid gamma value: 1.5"),
        (lambda: schedules.exponential(0.0), "Invalid gamma value: 0.0"),
        (lambda: schedules.inverse_time(-1.0), "Invalid k value: -1.0"),
        (lambda: schedules.cosine(0), "Invalid T value: 0"),
        (lambda: schedules.cosine(10, min_lr=-1.0), "Invalid min_lr value: -1.0"),
    ],
)
def test_schedule_error_inputs(make, regex):
    with pytest.raises(ValueError, match=re.escape(regex)):
        make()


def test_rprop_schedule_warns_and_does_nothing():
    hyper = CASES["irprop-"][1]
    with pytest.warns(UserWarning, match="no effect"):
        fastopt.optimizer("rprop", schedule=schedules.exponential(0.5), **hyper)
    with pytest.warns(UserWarning):
        traj, _, _ = run_fastopt("rprop", hyper, PROBLEM.x0, 30, schedule=schedules.cosine(5))
    plain, _, _ = run_fastopt("rprop", hyper, PROBLEM.x0, 30)
    assert_array_equal(traj, plain)


# --------------------------------------------------------------------------
# Error inputs (torch's optim_error_inputs style): one table, one test
# --------------------------------------------------------------------------
X3 = np.zeros(3)


def _err(desc, method, kwargs, error_type, regex, x=None, g=None, value=None):
    return pytest.param(method, kwargs, x, g, value, error_type, regex, id=desc)


ERROR_INPUTS = [
    _err("b1=1", "adam", dict(b1=1.0), ValueError, re.escape("Invalid b1 value: 1.0")),
    _err("b1<0", "adamax", dict(b1=-0.1), ValueError, re.escape("Invalid b1 value: -0.1")),
    _err("b2=1", "adamw", dict(b2=1.0), ValueError, re.escape("Invalid b2 value: 1.0")),
    _err(
        "lr<0",
        "sgd",
        dict(learning_rate=-1e-3),
        ValueError,
        re.escape("Invalid learning_rate value: -0.001"),
    ),
    _err("lr<0-rprop", "rprop", dict(learning_rate=-1.0), ValueError, "Invalid learning_rate"),
    _err(
        "lr=nan",
        "adam",
        dict(learning_rate=math.nan),
        ValueError,
        re.escape("Invalid learning_rate value: nan"),
    ),
    _err("eps<0", "adam", dict(eps=-1e-8), ValueError, re.escape("Invalid epsilon value: -1e-08")),
    _err("eps<0-adagrad", "adagrad", dict(eps=-1.0), ValueError, "Invalid epsilon value"),
    _err("eps<0-rmsprop", "rmsprop", dict(eps=-1.0), ValueError, "Invalid epsilon value"),
    _err("eps<0-adadelta", "adadelta", dict(eps=-1.0), ValueError, "Invalid epsilon value"),
    _err(
        "wd<0",
        "sgd",
        dict(weight_decay=-0.1),
        ValueError,
        re.escape("Invalid weight_decay value: -0.1"),
    ),
    _err("wd<0-adamw", "adamw", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay"),
    _err("momentum<0", "momentum", dict(momentum=-0.5), ValueError, "Invalid momentum value"),
    _err("nag-momentum=0", "nag", dict(momentum=0.0), ValueError, "Invalid momentum value"),
    _err(
        "dampening>1",
        "momentum",
        dict(dampening=1.5),
        ValueError,
        re.escape("Invalid dampening value: 1.5"),
    ),
    _err(
        "eta_minus=1",
        "rprop",
        dict(eta_minus=1.0),
        ValueError,
        re.escape("Invalid eta_minus value: 1.0"),
    ),
    _err(
        "eta_minus=0",
        "rprop",
        dict(eta_minus=0.0),
        ValueError,
        re.escape("Invalid eta_minus value: 0.0"),
    ),
    _err(
        "eta_plus=1",
        "rprop",
        dict(eta_plus=1.0),
        ValueError,
        re.escape("Invalid eta_plus value: 1.0"),
    ),
    _err("eta_plus<1", "rprop", dict(eta_plus=0.5), ValueError, "Invalid eta_plus value: 0.5"),
    _err(
        "min>max",
        "rprop",
        dict(min_step=1.0, max_step=0.1),
        ValueError,
        "Invalid min_step/max_step",
    ),
    _err("decay>1", "rmsprop", dict(decay=1.1), ValueError, re.escape("Invalid decay value: 1.1")),
    _err(
        "decay<0", "rmsprop", dict(decay=-0.1), ValueError, re.escape("Invalid decay value: -0.1")
    ),
    _err("rho>1", "adadelta", dict(rho=1.1), ValueError, re.escape("Invalid rho value: 1.1")),
    _err("rho<0", "adadelta", dict(rho=-0.5), ValueError, re.escape("Invalid rho value: -0.5")),
    _err("lr_decay<0", "adagrad", dict(lr_decay=-1.0), ValueError, "Invalid lr_decay value"),
    _err(
        "init_acc<0",
        "adagrad",
        dict(initial_accumulator_value=-1.0),
        ValueError,
        "Invalid initial_accumulator_value",
    ),
    _err(
        "unknown-method",
        "adamm",
        {},
        ValueError,
        r"Unknown method 'adamm'.*" + ".*".join(map(re.escape, RULES)),
    ),
    _err("unknown-option", "adam", dict(alpha=0.1), TypeError, "unknown option.*'alpha'"),
    _err("unknown-option-sgd", "sgd", dict(betas=(0.9, 0.99)), TypeError, "unknown.*'betas'"),
    _err("alias-and-name", "adam", dict(lr=0.1, learning_rate=0.2), TypeError, "both 'lr'"),
    _err("alias-and-name-betas", "adam", dict(b2=0.9, betas=(0.9, 0.99)), TypeError, "both"),
    _err("alias-lr<0", "adam", dict(lr=-0.5), ValueError, re.escape("Invalid lr value: -0.5")),
    _err("alias-alpha>1", "rmsprop", dict(alpha=2.0), ValueError, "Invalid alpha value: 2.0"),
    _err("alias-betas-len", "adam", dict(betas=0.9), ValueError, "Invalid betas value: 0.9"),
    _err("lr-bool", "sgd", dict(learning_rate=True), ValueError, "Invalid learning_rate value"),
    _err(
        "unknown-option-rprop-wd",
        "rprop",
        dict(weight_decay=0.1),
        TypeError,
        "unknown option.*'weight_decay'",
    ),
    _err(
        "variant",
        "rprop",
        dict(variant="irprop"),
        ValueError,
        re.escape("Invalid variant value: 'irprop'"),
    ),
    _err("bool-option", "adam", dict(amsgrad=1), ValueError, "Invalid amsgrad value"),
    _err("float-option", "adam", dict(b1="high"), ValueError, "Invalid b1 value"),
    _err("parallel", "adam", dict(parallel="yes"), ValueError, "Invalid parallel value: 'yes'"),
    _err("schedule", "adam", dict(schedule="cosine"), ValueError, "Invalid schedule: 'cosine'"),
    _err("x-2d", "adam", {}, ValueError, "x must be 1-D", x=np.zeros((2, 3))),
    _err(
        "x-int",
        "adam",
        {},
        ValueError,
        "x must be float32 or float64",
        x=np.zeros(3, dtype=np.int64),
    ),
    # a list is structured params (test_groups.py): of arrays, not of numbers
    _err("x-list", "adam", {}, TypeError, r"params\[0\]: expected a numpy array", x=[0.0, 1.0]),
    _err(
        "g-length",
        "adam",
        {},
        ValueError,
        "x, g and the state must have the same length",
        x=X3,
        g=np.zeros(4),
    ),
    _err("g-length-sgd", "sgd", {}, ValueError, "same length", x=X3, g=np.zeros(2)),
    _err(
        "irprop+-no-value",
        "rprop",
        dict(variant="irprop+"),
        ValueError,
        "needs the objective",
        x=X3,
        g=np.zeros(3),
    ),
]


#: torch 2.13's ``optim_error_inputs_func_*`` (torch/testing/_internal/
#: common_optimizers.py), every ValueError case of the rules fastopt has, given
#: with torch's option names and expecting torch's message.  (The others test
#: torch-only machinery: Tensor lr and betas, foreach/fused/differentiable.)
TORCH_ERROR_INPUTS = [
    ("adadelta", dict(lr=1e-2, rho=1.1), "Invalid rho value: 1.1"),
    ("adagrad", dict(lr=1e-2, lr_decay=-0.5), "Invalid lr_decay value: -0.5"),
    ("adam", dict(lr=1e-2, betas=(1.0, 0.0)), "Invalid beta parameter at index 0: 1.0"),
    ("adam", dict(lr=1e-2, weight_decay=-1), "Invalid weight_decay value: -1"),
    ("adamax", dict(lr=1e-2, betas=(0.0, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("rmsprop", dict(lr=1e-2, momentum=-1.0), "Invalid momentum value: -1.0"),
    ("rprop", dict(lr=1e-2, etas=(1.0, 0.5)), "Invalid eta values: 1.0, 0.5"),
    ("momentum", dict(lr=1e-2, momentum=-0.5), "Invalid momentum value: -0.5"),
]
for _m, _kw, _msg in TORCH_ERROR_INPUTS:
    ERROR_INPUTS.append(_err(f"torch-{_m}-{'-'.join(_kw)}", _m, _kw, ValueError, re.escape(_msg)))


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("rmsprop", dict(decay=1.0)),
        ("rmsprop", dict(alpha=1.0)),
        ("adadelta", dict(rho=1.0)),
        ("adadelta", dict(rho=0.0)),
        ("momentum", dict(dampening=1.0)),
        ("momentum", dict(momentum=0.0, dampening=0.5)),
    ],
)
def test_torch_accepts_closed_ranges(method, kwargs):
    """torch accepts the ends of these ranges (optim_db configurations); so do we."""
    fastopt.optimizer(method, **kwargs)


def test_momentum_zero_ignores_dampening():
    """torch's SGD(momentum=0, dampening=d) is plain SGD: the dampening is ignored."""
    x, y = np.array([1.0, -2.0, 3.0]), np.array([1.0, -2.0, 3.0])
    a = fastopt.optimizer("momentum", learning_rate=0.1, momentum=0.0, dampening=0.7)
    b = fastopt.optimizer("sgd", learning_rate=0.1)
    sa, sb = a.init(x), b.init(y)
    for k in range(4):
        sa = a.step(x, np.sin(x + k), sa)
        sb = b.step(y, np.sin(y + k), sb)
    assert_array_equal(x, y)


def test_torch_option_names_are_aliases():
    """``lr``, ``betas``, ``alpha``, ``etas``, ``step_sizes`` build the same optimizer."""
    pairs = [
        ("adam", dict(lr=0.1, betas=(0.8, 0.9)), dict(learning_rate=0.1, b1=0.8, b2=0.9)),
        ("rmsprop", dict(alpha=0.5), dict(decay=0.5)),
        (
            "rprop",
            dict(etas=(0.3, 1.4), step_sizes=(1e-3, 2.0)),
            dict(eta_minus=0.3, eta_plus=1.4, min_step=1e-3, max_step=2.0),
        ),
    ]
    for method, torch_names, names in pairs:
        assert (
            fastopt.optimizer(method, **torch_names).hyper
            == fastopt.optimizer(method, **names).hyper
        )


@pytest.mark.parametrize("method, kwargs, x, g, value, error_type, regex", ERROR_INPUTS)
def test_error_inputs(method, kwargs, x, g, value, error_type, regex):
    with pytest.raises(error_type, match=regex):
        opt = fastopt.optimizer(method, **kwargs)
        if x is None:
            return
        x = x.copy() if isinstance(x, np.ndarray) else x
        state = opt.init(x)
        if g is None:
            return
        opt.step(x, g, state, value=value)
    if g is not None and isinstance(x, np.ndarray) and x.ndim == 1:
        assert_array_equal(x, X3)  # a rejected step leaves x alone


# --------------------------------------------------------------------------
# Hypothesis properties
# --------------------------------------------------------------------------
def _arrays(n, dtype):
    elements = st.floats(-1e3, 1e3, width=np.dtype(dtype).itemsize * 8, allow_subnormal=False)
    return hnp.arrays(dtype, n, elements=elements)


@st.composite
def problems(draw):
    """x0 and three gradients (and objective values) of the same length and dtype."""
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    n = draw(st.integers(1, 12))
    x = draw(_arrays(n, dtype))
    gs = [draw(_arrays(n, dtype)) for _ in range(3)]
    values = draw(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3))
    return x, gs, values


def _steps(method, hyper, x, gs, values):
    opt = fastopt.optimizer(method, **hyper)
    state = opt.init(x)
    for g, f in zip(gs, values, strict=True):
        state = opt.step(x, g, state, value=f)
    return state


@pytest.mark.parametrize("cid", CASE_IDS)
@settings(max_examples=15, deadline=None)
@given(problem=problems())
def test_zero_learning_rate_keeps_x(cid, problem):
    # rprop: learning_rate is the initial step; with min_step 0 it stays 0.
    # adamw: x*(1 - lr*wd) = x.  Everything else multiplies its update by lr.
    method, hyper = CASES[cid]
    hyper = dict(hyper, learning_rate=0.0)
    if method == "rprop":
        hyper["min_step"] = 0.0
    x0, gs, values = problem
    x = x0.copy()
    state = _steps(method, hyper, x, gs, values)
    assert_array_equal(x, x0)
    assert state.count == 3 and x.dtype == x0.dtype


@pytest.mark.parametrize("cid", CASE_IDS)
@settings(max_examples=15, deadline=None)
@given(problem=problems(), data=st.data())
def test_permutation_equivariance(cid, problem, data):
    # every rule is elementwise: permuting coordinates permutes the result exactly
    method, hyper = CASES[cid]
    x0, gs, values = problem
    perm = np.array(data.draw(st.permutations(range(x0.shape[0]))), dtype=np.intp)
    x = x0.copy()
    state = _steps(method, hyper, x, gs, values)
    xp = x0[perm].copy()
    state_p = _steps(method, hyper, xp, [g[perm] for g in gs], values)
    assert_array_equal(xp, x[perm])
    assert_array_equal(state_p.slots, state.slots[:, perm])


# --------------------------------------------------------------------------
# Memory safety of the optimizer API (issue 11.4): numba does no bounds
# checking, so every state and gradient is checked before a kernel runs
# --------------------------------------------------------------------------
def _fresh(method="adam", n=5, dtype=np.float64, **kw):
    opt = fastopt.optimizer(method, **kw)
    x = np.linspace(-1.0, 1.0, n).astype(dtype)
    return opt, x, opt.init(x)


def test_foreign_state_crash_reproducer_in_subprocess():
    """The issue's reproducer (heap corruption before) is a ValueError, in a child process."""
    code = (
        "import numpy as np, fastopt\n"
        "x = np.ones(1000); g = np.ones(1000)\n"
        "try:\n"
        "    fastopt.optimizer('adam').step(x, g, fastopt.optimizer('sgd').init(x))\n"
        "except ValueError as e:\n"
        "    print('ValueError', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ValueError state is of 'sgd'"), out.stdout


@pytest.mark.parametrize(
    "other, regex",
    [
        (dict(method="sgd"), "state is of 'sgd'"),
        (dict(method="adam", amsgrad=True), "state is of 'adam_amsgrad'"),
        (dict(method="adamax"), "state is of 'adamax'"),
        (dict(method="nag"), "state is of 'nag'"),
        (dict(n=4), "same length"),
        (dict(n=6), "same length"),
        (dict(dtype=np.float32), "the state is float32 but x is float64"),
    ],
)
def test_step_refuses_a_foreign_state(other, regex):
    opt, x, _ = _fresh()
    kw = dict(other)
    method, n, dtype = kw.pop("method", "adam"), kw.pop("n", 5), kw.pop("dtype", np.float64)
    _, _, state = _fresh(method, n, dtype, **kw)
    x0 = x.copy()
    with pytest.raises(ValueError, match=regex):
        opt.step(x, np.ones_like(x), state)
    assert_array_equal(x, x0)


def test_step_refuses_a_momentum_state_in_nag():
    """Same slot layout, another rule: still refused (the state's meaning differs)."""
    opt, x, _ = _fresh("nag")
    with pytest.raises(ValueError, match="state is of 'momentum'"):
        opt.step(x, x.copy(), fastopt.optimizer("momentum").init(x))


@pytest.mark.parametrize(
    "g, error, regex",
    [
        (np.ones(4), ValueError, "same length|shape"),
        (np.ones(6), ValueError, "same length|shape"),
        (np.ones((5, 1)), ValueError, "shape"),
        (np.ones(5, dtype=np.float32), ValueError, "dtype of x"),
        (np.ones(5, dtype=np.int64), ValueError, "dtype of x"),
        ([1.0] * 5, TypeError, "g must be a numpy array"),
    ],
)
def test_step_checks_g_on_every_call(g, error, regex):
    """Not only the first call: a gradient that changes mid-run is refused."""
    opt, x, state = _fresh()
    state = opt.step(x, np.ones(5), state)
    state = opt.step(x, np.ones(5), state)
    x0 = x.copy()
    with pytest.raises(error, match=regex):
        opt.step(x, g, state)
    assert_array_equal(x, x0)
    assert_array_equal(state.slots, opt.step(x0.copy(), np.ones(5), state).slots)  # still usable


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.complex128, bool])
def test_step_refuses_non_float_x(dtype):
    opt, _, state = _fresh()
    x = np.zeros(5, dtype=dtype)
    with pytest.raises(ValueError, match="x must be float32 or float64"):
        opt.step(x, np.ones(5), state)


def test_step_refuses_bad_count():
    opt, x, state = _fresh()
    for count in (-1, 1.5, math.nan, True):
        with pytest.raises(ValueError, match="Invalid count"):
            opt.step(x, np.ones(5), state._replace(count=count))
    opt.step(x, np.ones(5), state._replace(count=np.int64(3)))  # a loaded count is fine


@pytest.mark.parametrize(
    "change, regex",
    [
        (dict(count=-1), "Invalid count value: -1"),
        (dict(count=math.nan), "Invalid count value: nan"),
        (dict(count=2.5), "Invalid count value: 2.5"),
        (dict(count="3"), "Invalid count value"),
        (dict(exp_avg=np.zeros(5, dtype=np.int64)), "'exp_avg' must be a 1-D float32 or float64"),
        (dict(exp_avg=np.zeros((5, 1))), "'exp_avg' must be a 1-D"),
        (dict(exp_avg=np.zeros(4)), "state slots differ"),
        (dict(exp_avg=np.zeros(5, dtype=np.float32)), "state slots differ"),
        (dict(kernel="adam_amsgrad"), "state dict is of 'adam_amsgrad'"),
    ],
)
def test_state_from_dict_checks_its_input(change, regex):
    opt, x, state = _fresh()
    state = opt.step(x, np.ones(5), state)
    d = {**state.to_dict(), **change}
    with pytest.raises(ValueError, match=regex):
        opt.state_from_dict(d)


def test_state_from_dict_through_npz(tmp_path):
    """np.load gives 0-d arrays for count and kernel: accepted, and checked."""
    opt, x, state = _fresh()
    state = opt.step(x, np.ones(5), state)
    np.savez(tmp_path / "s.npz", **state.to_dict())
    loaded = opt.state_from_dict(dict(np.load(tmp_path / "s.npz")))
    assert loaded.count == 1 and loaded.kernel == "adam"
    y = x.copy()
    opt.step(x, np.ones(5), state)
    opt.step(y, np.ones(5), loaded)
    assert_array_equal(x, y)
    with pytest.raises(ValueError, match="state dict is of 'adam'"):
        fastopt.optimizer("adamax").state_from_dict(dict(np.load(tmp_path / "s.npz")))


@pytest.mark.parametrize("bad", [-0.1, math.nan, "fast", None])
def test_schedule_returning_a_bad_rate(bad):
    opt = fastopt.optimizer("sgd", schedule=lambda t: 0.1 if t < 2 else bad)
    x = np.ones(3)
    state = opt.init(x)
    state = opt.step(x, x.copy(), state)
    state = opt.step(x, x.copy(), state)
    x0 = x.copy()
    with pytest.raises(ValueError, match="schedule returned"):
        opt.step(x, x.copy(), state)
    assert_array_equal(x, x0)


def test_schedule_object_with_negative_rate():
    """A schedule object whose rate turns negative (cosine with min_lr above base) is caught."""
    opt = fastopt.optimizer("sgd", learning_rate=0.1, schedule=schedules.cosine(4, min_lr=0.0))
    opt.base_lr = -0.1  # as a subclass with a bug would produce
    x = np.ones(3)
    with pytest.raises(ValueError, match="schedule returned learning rate"):
        opt.step(x, x.copy(), opt.init(x))


# --------------------------------------------------------------------------
# Pickle and deepcopy (issue 11.7)
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, kw",
    [
        ("adam", dict(learning_rate=0.05, amsgrad=True)),
        ("rmsprop", dict(alpha=0.9, centered=True, momentum=0.5)),
        ("sgd", dict(lr=0.1, schedule=schedules.cosine(10, min_lr=0.01))),
        ("rprop", dict(variant="irprop+")),
    ],
)
def test_optimizer_pickles_and_deepcopies(method, kw):
    import copy
    import pickle

    opt = fastopt.optimizer(method, **kw)
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt), copy.copy(opt)):
        assert clone is not opt and repr(clone) == repr(opt) and clone.key == opt.key
        x, y = PROBLEM.x0.copy(), PROBLEM.x0.copy()
        s1, s2 = opt.init(x), clone.init(y)
        for k in range(5):
            s1 = opt.step(x, PROBLEM.grad(x, k), s1, value=PROBLEM.fun(x, k))
            s2 = clone.step(y, PROBLEM.grad(y, k), s2, value=PROBLEM.fun(y, k))
        assert_array_equal(x, y)
        assert_array_equal(s1.slots, s2.slots)


def test_maximize_through_minimize_compiled_and_python_agree():
    """``options={"maximize": True}`` climbs f; the compiled and the Python loop agree."""
    import numba

    @numba.njit
    def fg(x):
        return -np.sum((x - 1.0) ** 2), -2.0 * (x - 1.0)

    def fg_py(x):
        return -np.sum((x - 1.0) ** 2), -2.0 * (x - 1.0)

    opts = {"maximize": True, "lr": 0.1, "maxiter": 300, "gtol": 0.0}
    a = fastopt.minimize(fg, np.zeros(3), jac=True, method="adam", options=opts)
    b = fastopt.minimize(fg_py, np.zeros(3), jac=True, method="adam", options=opts)
    assert_array_equal(a.x, b.x)
    assert np.abs(a.x - 1.0).max() < 1e-3
