"""Structured parameters, packing and parameter groups (issue 13.1-13.2).

Structured params must step exactly as the concatenated flat vector (the rules
are element-wise), keep the user's array objects, and groups must match
torch.optim's param groups.
"""

import copy
import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastopt
from fastopt.rules import KERNEL_IDS

SHAPES = {"W1": (4, 3), "b1": (3,), "W2": (3, 2), "b2": (2,), "v": (5,)}
RNG = np.random.default_rng(0)
P0 = {k: RNG.standard_normal(s) for k, s in SHAPES.items()}
OFFSETS = np.cumsum([0] + [int(np.prod(s)) for s in SHAPES.values()])


def grad_of(params, k):
    """A gradient that depends on the parameters (the trajectory feeds back)."""
    return {n: np.sin(3 * params[n] + 0.3 * k) + 0.2 * params[n] - 0.1 for n in params}


def as_dict(flat):
    return {
        n: flat[a:b].reshape(s)
        for (n, s), a, b in zip(SHAPES.items(), OFFSETS[:-1], OFFSETS[1:], strict=True)
    }


def concat(tree):
    return np.concatenate([tree[n].ravel() for n in SHAPES])


# one option set per kernel variant (those that need options to be selected)
VARIANTS = {
    "sgd": ("sgd", dict(lr=0.05, weight_decay=0.01)),
    "momentum": ("momentum", dict(lr=0.05, dampening=0.1)),
    "nag": ("nag", dict(lr=0.05)),
    "irprop-": ("rprop", dict(lr=0.05)),
    "rprop-": ("rprop", dict(lr=0.05, variant="rprop-")),
    "rprop+": ("rprop", dict(lr=0.05, variant="rprop+")),
    "irprop+": ("rprop", dict(lr=0.05, variant="irprop+")),
    "adagrad": ("adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
    "rmsprop": ("rmsprop", dict(lr=0.01)),
    "rmsprop_centered": ("rmsprop", dict(lr=0.01, centered=True, eps=1e-2)),
    "rmsprop_momentum": ("rmsprop", dict(lr=0.01, momentum=0.5)),
    "rmsprop_centered_momentum": ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True, eps=0.01)),
    "adadelta": ("adadelta", dict(weight_decay=0.01)),
    "adam": ("adam", dict(lr=0.05)),
    "adam_amsgrad": ("adam", dict(lr=0.05, amsgrad=True)),
    "adamax": ("adamax", dict(lr=0.05)),
    "nadam": ("nadam", dict(lr=0.05)),
    "radam": ("radam", dict(lr=0.05)),
}


def test_variants_cover_every_kernel():
    assert {fastopt.optimizer(m, **o).key for m, o in VARIANTS.values()} == set(KERNEL_IDS)


def _run_flat(opt, steps, dtype=np.float64):
    x = concat(P0).astype(dtype)
    s = opt.init(x)
    for k in range(steps):
        g = concat(grad_of(as_dict(x), k)).astype(dtype)
        s = opt.step(x, g, s, value=float(k % 3))
    return x, s


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("key", list(VARIANTS))
def test_structured_equals_flat_bit_for_bit(key, dtype):
    method, opts = VARIANTS[key]
    opt = fastopt.optimizer(method, **opts)
    x, sf = _run_flat(opt, 6, dtype)
    params = {k: v.astype(dtype) for k, v in P0.items()}
    ids = {k: id(v) for k, v in params.items()}
    s = opt.init(params)
    for k in range(6):
        g = {n: v.astype(dtype) for n, v in grad_of(params, k).items()}
        s = opt.step(params, g, s, value=float(k % 3))
    assert {k: id(v) for k, v in params.items()} == ids  # the user's arrays, in place
    assert all(params[n].shape == SHAPES[n] and params[n].dtype == dtype for n in SHAPES)
    assert_array_equal(concat(params), x)
    assert s.count == sf.count == 6
    d, df = s.to_dict(), sf.to_dict()
    assert d.keys() == df.keys()
    for name in opt.slot_names:
        assert_array_equal(d[name], df[name], err_msg=name)
        assert_array_equal(s[name], sf[name], err_msg=name)
    assert s.scalars == sf.scalars


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: [d[n] for n in SHAPES], id="list"),
        pytest.param(lambda d: tuple(d[n] for n in SHAPES), id="tuple"),
        pytest.param(
            lambda d: {
                "layer1": {"W": d["W1"], "b": d["b1"]},
                "rest": [d["W2"], (d["b2"], d["v"])],
            },
            id="nested",
        ),
    ],
)
def test_containers_equal_flat(make):
    opt = fastopt.optimizer("adam", lr=0.05, weight_decay=0.01)
    x, _ = _run_flat(opt, 5)
    arrays = {k: v.copy() for k, v in P0.items()}
    params = make(arrays)
    s = opt.init(params)
    for k in range(5):
        s = opt.step(params, make(grad_of(arrays, k)), s)
    assert_array_equal(concat(arrays), x)


def test_pack_is_one_run_and_equals_flat():
    opt = fastopt.optimizer("adam", lr=0.05)
    x, _ = _run_flat(opt, 5)
    params = fastopt.pack(P0)
    buf = fastopt.packed_buffer(params)
    assert buf is not None and buf.shape == (OFFSETS[-1],)
    assert all(np.shares_memory(params[n], buf) for n in SHAPES)
    s = opt.init(params)
    assert s.layout.runs == ((0, int(OFFSETS[-1]), 0),)  # one kernel call per step
    for k in range(5):
        g = grad_of(params, k)
        g = concat(g) if k % 2 else g  # a flat gradient or separate arrays (gathered)
        s = opt.step(params, g, s)
    assert_array_equal(buf, x)
    assert_array_equal(concat(params), x)
    # gradients packed too: used in place
    grads = fastopt.pack({n: np.ones(sh) for n, sh in SHAPES.items()})
    opt.step(params, grads, s)


def test_pack_keeps_structure_and_dtype():
    p = fastopt.pack({"a": np.ones((2, 2), np.float32), "b": [np.zeros(3, np.float32)]})
    assert isinstance(p["b"], list) and p["b"][0].shape == (3,)
    assert fastopt.packed_buffer(p).dtype == np.float32
    assert fastopt.packed_buffer({"a": np.ones(2), "b": np.ones(2)}) is None
    with pytest.raises(ValueError, match="float32 or float64"):
        fastopt.pack({"a": np.ones(2, dtype=np.int64)})


# --------------------------------------------------------------------------
# Groups against torch.optim's param groups
# --------------------------------------------------------------------------
try:  # torch only for the parity tests: the rest runs without it (README command 2)
    import torch
except ImportError:
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (parity extra)")

# method: (torch class, torch-only options, top-level options, the group's options)
TORCH_GROUPS = {
    "sgd": ("SGD", {}, dict(lr=0.05, weight_decay=0.05), dict(lr=0.02, weight_decay=0.0)),
    "momentum": (
        "SGD",
        {},
        dict(lr=0.02, momentum=0.8, dampening=0.2, weight_decay=0.05),
        dict(lr=0.05, momentum=0.5, weight_decay=0.0),
    ),
    "nag": (
        "SGD",
        dict(nesterov=True),
        dict(lr=0.02, momentum=0.8, weight_decay=0.05),
        dict(lr=0.05, momentum=0.6, weight_decay=0.0),
    ),
    "rprop": ("Rprop", {}, dict(lr=0.05, etas=(0.4, 1.3)), dict(lr=0.02, step_sizes=(1e-4, 0.3))),
    "adagrad": (
        "Adagrad",
        {},
        dict(lr=0.3, lr_decay=0.01, initial_accumulator_value=0.2, weight_decay=0.05),
        # not initial_accumulator_value: torch 2.13 fills every group's sum with
        # the top-level value (Adagrad.__init__); fastopt uses the group's
        dict(lr=0.1, eps=1e-6, weight_decay=0.0),
    ),
    "rmsprop": (
        "RMSprop",
        {},
        dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.05),
        dict(lr=0.03, alpha=0.95, momentum=0.2, weight_decay=0.0),
    ),
    "adadelta": (
        "Adadelta",
        {},
        dict(lr=2.0, rho=0.85, weight_decay=0.05),
        dict(lr=1.0, rho=0.9, weight_decay=0.0),
    ),
    "adam": (
        "Adam",
        {},
        dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.05),
        dict(lr=0.02, betas=(0.9, 0.95), weight_decay=0.0),
    ),
    "adamw": ("AdamW", {}, dict(lr=0.05), dict(lr=0.02, weight_decay=0.0)),
    "adamax": (
        "Adamax",
        {},
        dict(lr=0.05, weight_decay=0.05),
        dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.0),
    ),
    "nadam": (
        "NAdam",
        {},
        dict(lr=0.05, weight_decay=0.05),
        dict(lr=0.02, momentum_decay=0.01, weight_decay=0.0),
    ),
    "radam": (
        "RAdam",
        {},
        dict(lr=0.05, weight_decay=0.05, decoupled_weight_decay=True),
        dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.0),
    ),
}
GROUP_KEYS = ["b1", "b2"]


@requires_torch
def test_torch_groups_cover_every_rule():
    assert set(TORCH_GROUPS) == set(fastopt.optim.RULES)


def _torch_run(method, steps, schedule=None):
    torch_name, only, top, grp = TORCH_GROUPS[method]
    tparams = {n: torch.tensor(v.copy(), requires_grad=True) for n, v in P0.items()}
    groups = [
        {"params": [tparams[n] for n in SHAPES if n not in GROUP_KEYS]},
        {"params": [tparams[n] for n in GROUP_KEYS], **grp},
    ]
    topt = getattr(torch.optim, torch_name)(groups, foreach=False, **only, **top)
    sched = None if schedule is None else torch.optim.lr_scheduler.ExponentialLR(topt, schedule)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's mu_product in float64 (next-steps.md 2)
    try:
        for k in range(steps):
            numpy = {n: t.detach().numpy().copy() for n, t in tparams.items()}
            for n, g in grad_of(numpy, k).items():
                tparams[n].grad = torch.from_numpy(g)
            topt.step()
            if sched is not None:
                sched.step()
    finally:
        torch.set_default_dtype(old)
    return {n: t.detach().numpy() for n, t in tparams.items()}, topt


def _fastopt_run(method, steps, schedule=None, params=None):
    _, _, top, grp = TORCH_GROUPS[method]
    sched = None if schedule is None else fastopt.schedules.exponential(schedule)
    opt = fastopt.optimizer(method, schedule=sched, groups=[{"params": GROUP_KEYS, **grp}], **top)
    params = {n: v.copy() for n, v in P0.items()} if params is None else params
    s = opt.init(params)
    for k in range(steps):
        s = opt.step(params, grad_of(params, k), s)
    return params, s, opt


@requires_torch
@pytest.mark.parametrize("method", list(TORCH_GROUPS))
def test_groups_match_torch_param_groups(method):
    """30 float64 steps, rtol 1e-11, for every rule (torch's own option names)."""
    ours, state, _ = _fastopt_run(method, 30)
    theirs, _ = _torch_run(method, 30)
    for n in SHAPES:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=1e-11, atol=1e-11, err_msg=n)
    assert np.abs(concat(ours) - concat(P0)).max() > 0.05  # it moved
    # the group's options made a difference: without groups the bias steps differ
    plain = fastopt.optimizer(method, **TORCH_GROUPS[method][2])
    x, _ = _run_flat(plain, 30)
    assert np.abs(as_dict(x)["b1"] - ours["b1"]).max() > 1e-6


@requires_torch
@pytest.mark.parametrize("method", ["adam", "sgd", "nadam"])
def test_schedule_scales_every_group_as_torch(method):
    ours, _, _ = _fastopt_run(method, 30, schedule=0.9)
    theirs, _ = _torch_run(method, 30, schedule=0.9)
    for n in SHAPES:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=1e-11, atol=1e-11, err_msg=n)


def test_callable_schedule_scales_groups_by_their_base_rate():
    opt = fastopt.optimizer("sgd", lr=0.1, schedule=lambda t: 0.1 * 0.5**t,
                            groups=[{"params": ["b1"], "lr": 0.3}])  # fmt: skip
    assert opt._group_lrs(2) == (0.025, 0.025 * (0.3 / 0.1))


@requires_torch
@pytest.mark.parametrize("method", ["nadam", "adam", "rprop"])
def test_groups_save_resume_bit_for_bit(method, tmp_path):
    full, sfull, _ = _fastopt_run(method, 20)
    _, _, top, grp = TORCH_GROUPS[method]

    def make():
        return fastopt.optimizer(method, groups=[{"params": GROUP_KEYS, **grp}], **top)

    opt = make()
    params = {n: v.copy() for n, v in P0.items()}
    s = opt.init(params)
    for k in range(10):
        s = opt.step(params, grad_of(params, k), s)
    np.savez(tmp_path / "s.npz", **s.to_dict())
    if method == "nadam":  # one mu_product per group: their momentum_decay differs
        assert {"mu_product", "mu_product/1"} <= set(s.to_dict())
        assert s.scalars[0][1] != s.scalars[1][1]
    opt2 = pickle.loads(pickle.dumps(make()))
    with np.load(tmp_path / "s.npz") as d:
        s2 = opt2.state_from_dict(dict(d), like=params)
    for k in range(10, 20):
        s2 = opt2.step(params, grad_of(params, k), s2)
    for n in SHAPES:
        assert_array_equal(params[n], full[n])
    assert s2.scalars == sfull.scalars


def test_flat_state_restores_onto_structured_params():
    opt = fastopt.optimizer("adam", lr=0.05)
    x, sf = _run_flat(opt, 4)
    params = {n: v.copy() for n, v in as_dict(x.copy()).items()}
    s = opt.state_from_dict(sf.to_dict(), like=params)
    s = opt.step(params, grad_of(params, 4), s)
    sf = opt.step(x, concat(grad_of(as_dict(x), 4)), sf)
    assert_array_equal(concat(params), x)


def test_optimizer_with_groups_deepcopies():
    opt = fastopt.optimizer("adam", lr=0.05, groups=[{"params": ["b1"], "lr": 0.1}])
    clone = copy.deepcopy(opt)
    a, b = {n: v.copy() for n, v in P0.items()}, {n: v.copy() for n, v in P0.items()}
    sa, sb = opt.init(a), clone.init(b)
    for k in range(3):
        sa, sb = opt.step(a, grad_of(a, k), sa), clone.step(b, grad_of(b, k), sb)
    assert_array_equal(concat(a), concat(b))


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def _init_with(groups, method="adam", params=None, **top):
    opt = fastopt.optimizer(method, groups=groups, **top)
    return opt.init({n: v.copy() for n, v in P0.items()} if params is None else params)


@pytest.mark.parametrize(
    "groups, error, regex",
    [
        ([{"params": ["nope"]}], ValueError, r"groups\[0\] names 'nope', which is not in"),
        (
            [{"params": ["b1"]}, {"params": ["b1", "b2"]}],
            ValueError,
            r"params\['b1'\] is in two groups \(groups\[0\] and groups\[1\]\)",
        ),
        ([{"params": ["b1"], "lrr": 0.1}], TypeError, r"groups\[0\]: adam: unknown option.*'lrr'"),
        ([{"params": ["b1"], "lr": -1.0}], ValueError, r"groups\[0\]: Invalid lr value: -1.0"),
        ([{"params": ["b1"], "amsgrad": True}], ValueError, "not the variant"),
        ([{"params": ["b1"], "schedule": None}], TypeError, "whole optimizer only"),
        ([{"weight_decay": 0.0}], ValueError, r"groups\[0\] has no 'params'"),
        ({"params": ["b1"]}, TypeError, "groups must be a list of dicts"),
        (["b1"], TypeError, r"groups\[0\] must be a dict"),
        ([{"params": ["b1"], "lr": 0.1, "learning_rate": 0.2}], TypeError, "both"),
    ],
)
def test_bad_group_specs(groups, error, regex):
    with pytest.raises(error, match=regex):
        _init_with(groups)


def test_groups_need_structured_params():
    opt = fastopt.optimizer("adam", groups=[{"params": [0]}])
    with pytest.raises(ValueError, match="groups name entries of structured params"):
        opt.init(np.zeros(3))
    # list params: groups name indices; nested: tuple paths or a sub-container
    s = opt.init([np.zeros(2), np.zeros(3)])
    assert s.layout.group_of_leaf == (1, 0)
    opt = fastopt.optimizer("adam", groups=[{"params": [("layer", "b")]}, {"params": ["head"]}])
    s = opt.init({"layer": {"W": np.zeros(2), "b": np.zeros(1)}, "head": [np.zeros(2)] * 2})
    assert s.layout.group_of_leaf == (0, 1, 2, 2)


@pytest.mark.parametrize(
    "grads, error, regex",
    [
        (lambda g: {**g, "b1": np.zeros(4)}, ValueError, r"grads\['b1'\] has shape \(4,\)"),
        (lambda g: {**g, "b1": g["b1"].astype(np.float32)}, ValueError, "float32; the params"),
        (lambda g: {n: g[n] for n in reversed(list(g))}, ValueError, "another structure"),
        (lambda g: {n: g[n] for n in list(g)[:-1]}, ValueError, "another structure"),
        (lambda g: concat(g)[:-1], ValueError, r"flat gradient must have shape \(28,\)"),
        (lambda g: {**g, "b1": [0.0, 1.0, 2.0]}, TypeError, "expected a numpy array"),
    ],
)
def test_bad_grads_are_refused(grads, error, regex):
    opt = fastopt.optimizer("adam")
    params = {n: v.copy() for n, v in P0.items()}
    s = opt.step(params, grad_of(params, 0), opt.init(params))
    before = concat(params)
    with pytest.raises(error, match=regex):
        opt.step(params, grads(grad_of(params, 1)), s)
    assert_array_equal(concat(params), before)


def test_states_of_other_params_are_refused():
    opt = fastopt.optimizer("adam")
    params = {n: v.copy() for n, v in P0.items()}
    x = concat(P0)
    with pytest.raises(ValueError, match="the state is not"):
        opt.step(params, grad_of(params, 0), opt.init(x))
    with pytest.raises(ValueError, match="state is for structured params"):
        opt.step(x, x.copy(), opt.init(params))
    other = opt.init({"a": np.zeros(3)})
    with pytest.raises(ValueError, match="another structure"):
        opt.step(params, grad_of(params, 0), other)
    with pytest.raises(ValueError, match="state is of 'sgd'"):
        opt.step(params, grad_of(params, 0), fastopt.optimizer("sgd").init(params))
    with pytest.raises(ValueError, match="params\\['b1'\\] is float32"):
        opt.init({**params, "b1": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="float32 or float64"):
        opt.init({"a": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="contiguous"):
        opt.init({"a": np.zeros((3, 4))[:, 1]})
