"""The hand-written CUDA kernels (minires/kernels/cuda/kernels.cu) against minires's generic array code.

Without a GPU they run under tests/cuda_emulator.py (the same source built for the CPU, every
block and thread in turn, with tiny blocks so grid-stride loops wrap); the `gpu`-marked tests at
the end run them through CuPy on a real GPU. nvcc, where installed, must compile the source for
Hopper in both dtypes.
"""
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires.functional as F
from minires import dispatch, tuning
from minires.functional.batchnorm import BatchNorm
from minires.functional.conv import Conv2d
from minires.functional.loss import CrossEntropy
from minires.functional.pooling import MaxPool2d
from minires.kernels.cpu.im2col import col2im_nhwc, im2col_nhwc, pad_nhwc
from minires.kernels.cuda import launcher, ops
from minires.kernels.shared import weight_matrix
from minires.testing import conv_configs, pool_configs

from cuda_emulator import EmulatedLauncher, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="needs a C++ compiler to emulate the kernels")
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module", params=["idx32", "idx64"])
def launch(request):
    """The emulated launcher, with 32-bit index arithmetic (what every test size gets) and with the
    64-bit build forced (IDX32_LIMIT = 0), so both builds of every kernel are checked."""
    limit = launcher.IDX32_LIMIT
    if request.param == "idx64":
        launcher.IDX32_LIMIT = 0
    emulated = EmulatedLauncher()
    try:
        yield emulated
    finally:
        launcher.IDX32_LIMIT = limit
    assert emulated.launches and all(idx32 == (request.param == "idx32") for _, _, idx32 in emulated.launches)


def layouts(a):
    """a as C-contiguous NCHW and as an NCHW view of channels-last memory."""
    return [np.ascontiguousarray(a), np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def test_every_kernel_in_the_source_has_a_parsed_signature():
    names = set(launcher.signatures())
    assert names == {"im2col", "col2im", "bn_partial_stats", "bn_merge", "bn_apply", "bn_partial_grad_sums",
                     "bn_backward_apply", "max_pool_forward", "max_pool_backward", "add_relu_forward",
                     "mask_grad", "softmax_xent_forward", "softmax_xent_backward", "depthwise_forward",
                     "depthwise_backward_input", "depthwise_backward_weight"}
    assert launcher.source().count('extern "C" __global__') == len(names)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
@pytest.mark.parametrize("dtype", launcher.DTYPES, ids=str)
@pytest.mark.parametrize("idx32", [True, False], ids=["idx32", "idx64"])
def test_nvcc_compiles_every_build_of_the_kernels_for_hopper_without_spills(tmp_path, dtype, idx32):
    """The builds CupyLauncher asks NVRTC for (same -D options, CuPy's default C++17), compiled by nvcc for sm_90."""
    defines = [f"-D{k}={v}" for k, v in launcher.defines(dtype, idx32).items()]
    r = subprocess.run(["nvcc", "-c", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v", *defines, "-x", "cu",
                        str(launcher.SOURCE_PATH), "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("Compiling entry function") == len(launcher.signatures())
    assert " 0 bytes spill stores" in r.stderr and "bytes spill stores" not in r.stderr.replace(" 0 bytes spill stores", "")


@settings(max_examples=15)
@given(cfg=conv_configs(max_groups=1), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_im2col_matches_the_cpu_columns_for_both_layouts(launch, cfg, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.N, cfg.C_in, cfg.H, cfg.W)).astype(dtype)
    k = (cfg.KH, cfg.KW)
    OH = (cfg.H + 2 * cfg.padding[0] - cfg.dilation[0] * (cfg.KH - 1) - 1) // cfg.stride[0] + 1
    OW = (cfg.W + 2 * cfg.padding[1] - cfg.dilation[1] * (cfg.KW - 1) - 1) // cfg.stride[1] + 1
    xpad = pad_nhwc(x, cfg.padding)
    want = im2col_nhwc(xpad, k, cfg.stride, cfg.dilation, (OH, OW)).reshape(cfg.N * OH * OW, -1)
    for xl in layouts(x):
        got = ops.im2col(launch, np, xl, k, cfg.stride, cfg.padding, cfg.dilation, (OH, OW))
        np.testing.assert_array_equal(got, want)
        # and the conv it feeds equals the CPU conv
        w = rng.standard_normal((cfg.C_out, cfg.C_in) + k).astype(dtype)
        conv = Conv2d()
        conv.needs_input_grad = (False, False, False)
        ref = conv.forward(x, w, None, stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation)
        out = (got @ weight_matrix(w, 1)[0]).reshape(cfg.N, OH, OW, -1).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(out, ref, **tol(dtype))
    # col2im is im2col's adjoint, and equals the CPU scatter
    c = rng.standard_normal(want.shape).astype(dtype)
    dx = ops.col2im(launch, np, c, x.shape, k, cfg.stride, cfg.padding, cfg.dilation, (OH, OW))
    f64 = np.float64
    scale = np.abs(want.astype(f64) * c).sum()  # a sum that cancels is judged against its terms' size
    np.testing.assert_allclose(np.vdot(want.astype(f64), c.astype(f64)), np.vdot(x.astype(f64), dx.astype(f64)),
                               atol=(1e-5 if dtype == np.float32 else 1e-12) * scale)
    ref = col2im_nhwc(c.reshape(cfg.N, OH, OW, cfg.KH, cfg.KW, cfg.C_in), xpad.shape, cfg.stride, cfg.dilation)
    ref = ref[:, cfg.padding[0]:cfg.padding[0] + cfg.H, cfg.padding[1]:cfg.padding[1] + cfg.W].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(dx, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 5), (2, 3, 4, 5), (1, 4, 1, 1), (300, 2)])
@pytest.mark.parametrize("slices", ["default", "many-levels"])
def test_batch_norm_kernels_match_the_cpu_batch_norm(launch, dtype, shape, slices, monkeypatch):
    if slices == "many-levels":  # one value per slice, pairs merged: log2(M) merge levels
        monkeypatch.setattr(tuning, "STAT_MIN_VALUES", 1)
        monkeypatch.setattr(tuning, "MERGE_FANIN", 2)
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)  # a large mean: one-pass sums would cancel
    g = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    ref = BatchNorm()
    ref.needs_input_grad = (True, True, True)
    y_ref = ref.forward(x, w, b, training=True, eps=1e-5)
    dx_ref, dw_ref, db_ref = ref.backward(g)
    for xl in (layouts(x) if x.ndim == 4 else [x]):
        gl = np.empty_like(xl)
        gl[...] = g
        inner = ops.channel_layout(xl)
        mean, var = ops.batch_norm_stats(launch, np, xl, inner)
        np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0,) + tuple(range(2, x.ndim))), rtol=1e-5)
        np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0,) + tuple(range(2, x.ndim))), rtol=1e-3)
        invstd = 1 / np.sqrt(var + 1e-5)
        y = ops.batch_norm_apply(launch, np, xl, inner, mean, invstd * w, b)
        np.testing.assert_allclose(y, y_ref, rtol=1e-3, atol=1e-4 if dtype == np.float32 else 1e-10)
        sum_g, sum_gxc = ops.batch_norm_grad_sums(launch, np, gl, xl, inner, mean)
        np.testing.assert_allclose(sum_g, db_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sum_gxc * invstd, dw_ref, rtol=1e-3, atol=1e-3)
        M = x.size // x.shape[1]
        dx = ops.batch_norm_backward_apply(launch, np, gl, xl, inner, mean, -(invstd ** 2 * sum_gxc) / M,
                                           -sum_g / M, invstd * w)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-3, atol=1e-3 if dtype == np.float32 else 1e-9)


def test_channel_layout_refuses_strided_slices():
    x = np.zeros((2, 3, 4, 6))
    assert ops.channel_layout(x) == 24 and ops.channel_layout(layouts(x)[1]) == 1
    assert ops.channel_layout(x[:, :, :, ::2]) is None


@settings(max_examples=20)
@given(cfg=pool_configs(), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES), ties=st.booleans())
def test_max_pool_kernels_match_the_cpu_pool(launch, cfg, seed, dtype, ties):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.N, cfg.C, cfg.H, cfg.W)).astype(dtype)
    if ties:  # few distinct values: the first maximum must win, as on the CPU
        x = np.round(x).astype(dtype)
    if seed % 3 == 0:
        x.flat[seed % x.size] = np.nan
    ref = MaxPool2d()
    out_ref = ref.forward(x, kernel_size=cfg.kernel_size, stride=cfg.stride, padding=cfg.padding)
    g = rng.standard_normal(out_ref.shape).astype(dtype)
    dx_ref = ref.backward(g)
    for xl in layouts(x):
        out, idx = ops.max_pool(launch, np, xl, cfg.kernel_size, cfg.stride, cfg.padding, out_ref.shape[2:])
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(idx, ref.idx)
        dx = ops.max_pool_backward(launch, np, g, idx, x.shape, cfg.kernel_size, cfg.stride, cfg.padding)
        np.testing.assert_allclose(dx, dx_ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_relu_and_mask_grad_match_numpy(launch, dtype):
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((3, 4, 5, 6)).astype(dtype) for _ in range(2))
    x[0, 0, 0, 0] = np.nan
    for xl, yl in zip(layouts(x), layouts(y)):
        out, mask = ops.add_relu(launch, np, xl, yl)
        np.testing.assert_array_equal(out, np.maximum(x + y, 0))  # NaN propagates, as np.maximum
        np.testing.assert_array_equal(mask, (x + y) > 0)
        g = np.empty_like(xl)
        g[...] = rng.standard_normal(x.shape)
        np.testing.assert_array_equal(ops.mask_grad(launch, np, g, mask), np.where((x + y) > 0, g, 0))
    a, b = layouts(x)
    assert ops.add_relu(launch, np, a, b) is None  # different layouts: the caller uses generic code


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_softmax_cross_entropy_kernels_match_the_cpu_loss(launch, dtype, eps, reduction):
    rng = np.random.default_rng(1)
    N, C = 9, 13
    logits = (rng.standard_normal((N, C)) * 30).astype(dtype)
    target = rng.integers(0, C, N)
    ref = CrossEntropy()
    ref.needs_input_grad = (True,)
    ref_loss = ref.forward(logits, target, label_smoothing=eps, reduction="none")
    prob, loss = ops.softmax_cross_entropy(launch, np, logits, target, eps)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prob, ref.p, rtol=1e-5, atol=1e-7)
    g = rng.standard_normal(N).astype(dtype) if reduction == "none" else np.asarray(1.7, dtype)
    ref.reduction = reduction
    want = ref.backward(g)
    scale = g if reduction == "none" else g / (N if reduction == "mean" else 1)
    d = ops.softmax_cross_entropy_backward(launch, np, prob, target, np.atleast_1d(scale), eps)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-6)


def test_launcher_checks_argument_types_and_count(launch):
    x = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="argument 'mask' must be bool"):
        launch("add_relu_forward", 4, x, x, x, np.zeros(4, np.int8), 4)
    with pytest.raises(TypeError, match="expected 5 arguments"):
        launch("add_relu_forward", 4, x, x, x)
    with pytest.raises(TypeError, match="float32 or float64"):
        launch("mask_grad", 4, np.zeros(4, np.int32), np.zeros(4, bool), np.zeros(4, np.int32), 4)


@pytest.mark.gpu
def test_kernels_on_the_gpu_match_the_emulation(launch):
    import cupy as cp
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 9, 9)).astype(np.float32)
    args = ((3, 3), (2, 2), (1, 1), (1, 1), (5, 5))
    want = ops.im2col(launch, np, x, *args)
    got = ops.im2col(launcher.cupy_launcher(), cp, cp.asarray(x), *args)
    np.testing.assert_array_equal(cp.asnumpy(got), want)
    out, idx = ops.max_pool(launcher.cupy_launcher(), cp, cp.asarray(x), (3, 3), (2, 2), (1, 1), (5, 5))
    ref_out, ref_idx = ops.max_pool(launch, np, x, (3, 3), (2, 2), (1, 1), (5, 5))
    np.testing.assert_array_equal(cp.asnumpy(out), ref_out)
    np.testing.assert_array_equal(cp.asnumpy(idx), ref_idx)
    mean, var = ops.batch_norm_stats(launcher.cupy_launcher(), cp, cp.asarray(x), 81)
    np.testing.assert_allclose(cp.asnumpy(mean), x.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(var), x.var(axis=(0, 2, 3)), rtol=1e-4)


@pytest.fixture
def kernel_dispatch(monkeypatch, launch):
    """Route NumPy arrays through the ops' CUDA fast paths (the CPU ones set aside), run by the emulator."""
    monkeypatch.setattr(launcher, "enabled", lambda xp, dtype: dtype in (np.float32, np.float64))
    monkeypatch.setattr(launcher, "cupy_launcher", lambda: launch)
    monkeypatch.setattr(dispatch, "_others", {op: [c for c in impls if c.__module__.startswith("minires.kernels.cuda")]
                                              for op, impls in dispatch._others.items()})
    with dispatch.use_impl("fast"):  # whatever MINIRES_IMPL says
        yield


def _t(a, grad=True):
    import minires as mr
    return mr.tensor(a, requires_grad=grad)


@pytest.mark.parametrize("case", ["bn", "bn_channels_last", "max_pool", "add_relu", "relu", "xent_mean", "xent_none"])
def test_op_kernel_branches_pass_gradcheck(kernel_dispatch, launch, case):
    """The ops' kernel branches (batch_norm, max_pool2d, add_relu, relu, cross_entropy), float64, forward
    against the generic path's formulas through gradcheck's finite differences (conv2d's CUDA branch is
    gradchecked by tests/ops/test_conv.py on the cuda-standin device)."""
    import minires as mr
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 5))
    if case.startswith("bn"):
        xa = layouts(x)[1] if case == "bn_channels_last" else x
        rm, rv = mr.zeros(3, dtype=mr.float64), mr.ones(3, dtype=mr.float64)
        fn = lambda a, w, b: F.batch_norm(a, rm, rv, w, b, training=True)  # noqa: E731
        inputs = [_t(xa), _t(rng.standard_normal(3)), _t(rng.standard_normal(3))]
    elif case == "max_pool":
        fn, inputs = (lambda a: F.max_pool2d(a, 3, 2, 1)), [_t(x)]
    elif case == "add_relu":
        fn, inputs = F.add_relu, [_t(x), _t(rng.standard_normal(x.shape))]
    elif case == "relu":
        fn, inputs = F.relu, [_t(x)]
    else:
        target = mr.tensor(rng.integers(0, 7, 6))
        red = case.split("_")[1]
        fn = lambda a: F.cross_entropy(a, target, label_smoothing=0.1, reduction=red)  # noqa: E731
        inputs = [_t(rng.standard_normal((6, 7)))]
    before = len(launch.launches)
    assert mr.gradcheck(fn, inputs)
    if case.startswith("bn"):  # the kernels ran, not a generic path
        ran = {name for name, _, _ in launch.launches[before:]}
        assert {"bn_partial_stats", "bn_apply", "bn_partial_grad_sums", "bn_backward_apply"} <= ran


def test_softmax_cross_entropy_kernel_keeps_a_minus_inf_logit_finite_without_smoothing(launch):
    logits = np.array([[-np.inf, 0.0, 1.0]])
    _, loss = ops.softmax_cross_entropy(launch, np, logits, np.array([1]), 0.0)
    ref = CrossEntropy()
    ref.needs_input_grad = (True,)
    np.testing.assert_allclose(loss, ref.forward(logits, np.array([1]), reduction="none"))
    assert np.isfinite(loss).all()


def test_dispatch_picks_the_kernels_for_float_arrays_of_the_cupy_in_use_only():
    import cupy_standin
    from minires import backend
    assert not launcher.enabled(np, np.float32)
    assert not launcher.enabled(cupy_standin, np.float32)  # not installed: not the CuPy in use
    with cupy_standin.installed():
        assert all(launcher.enabled(cupy_standin, d) for d in (np.float16, np.float32, np.float64))
        assert not launcher.enabled(cupy_standin, np.int32) and not launcher.enabled(np, np.float32)
        assert backend.get_array_module(cupy_standin.zeros(3)) is cupy_standin
    assert backend.get_array_module(cupy_standin.zeros(3)) is np


def test_index_width_follows_the_largest_offset(monkeypatch):
    """32-bit indices only while every size and element offset fits, strided views included."""
    seen = []

    class Recorder(launcher.Launcher):
        def launch(self, name, dtype, idx32, grid, args):
            seen.append((idx32, type(args[-1])))
    x = np.zeros((4, 8), np.float32)
    monkeypatch.setattr(launcher, "IDX32_LIMIT", 32)
    Recorder()("mask_grad", 31, x.ravel()[:31], np.zeros(31, bool), np.zeros(31, np.float32), 31)
    Recorder()("mask_grad", 8, x[:, 0], np.zeros(8, bool), np.zeros(8, np.float32), 8)  # reaches offset 28
    x5 = np.zeros((5, 8), np.float32)
    Recorder()("mask_grad", 5, x5[:, 0], np.zeros(5, bool), np.zeros(5, np.float32), 5)  # reaches offset 32
    Recorder()("mask_grad", 32, x.ravel(), np.zeros(32, bool), np.zeros(32, np.float32), 32)
    assert seen == [(True, np.int32), (True, np.int32), (False, np.int64), (False, np.int64)]


def test_launch_geometry_reads_tuning_at_each_launch(monkeypatch):
    """Threads per block and the grid's cap come from minires.tuning when the kernel launches."""
    seen = []

    class Recorder(launcher.Launcher):
        def launch(self, name, dtype, idx32, grid, args):
            seen.append((grid, self.block))
    args = (np.zeros(1000, np.float32), np.zeros(1000, bool), np.zeros(1000, np.float32), 1000)
    Recorder()("mask_grad", 1000, *args)
    monkeypatch.setattr(tuning, "BLOCK", 100)
    Recorder()("mask_grad", 1000, *args)
    monkeypatch.setattr(tuning, "MAX_BLOCKS", 3)
    Recorder()("mask_grad", 1000, *args)
    tiny = Recorder()
    tiny.block = 7  # set on a launcher (the emulator's tiny blocks): tuning no longer applies
    tiny("mask_grad", 1000, *args)
    assert seen == [(4, 256), (10, 100), (3, 100), (3, 7)]


def _half_ref(fn, *arrays):
    """fn on float32 copies of float16 arrays, rounded back to float16: what a kernel that widens,
    computes in float32 and rounds once must give."""
    out = fn(*(a.astype(np.float32) for a in arrays))
    return tuple(o.astype(np.float16) for o in out) if isinstance(out, tuple) else out.astype(np.float16)


def test_float16_kernels_compute_in_float32_and_round_once(launch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float16)
    y = rng.standard_normal(x.shape).astype(np.float16)
    x[0, 0, 0, 0] = np.nan
    # im2col copies values; col2im sums overlaps in float32
    k, st_, pad, dil, osz = (3, 3), (2, 1), (1, 1), (1, 1), (4, 6)
    cols = ops.im2col(launch, np, x, k, st_, pad, dil, osz)
    want = im2col_nhwc(pad_nhwc(x, pad), k, st_, dil, osz).reshape(cols.shape)
    np.testing.assert_array_equal(cols, want)
    c = rng.standard_normal(cols.shape).astype(np.float16)
    dx = ops.col2im(launch, np, c, x.shape, k, st_, pad, dil, osz)
    ref = col2im_nhwc(c.astype(np.float32).reshape(2, 4, 6, 3, 3, 3), (2, 9, 8, 3), st_, dil)
    np.testing.assert_array_equal(dx, ref[:, 1:8, 1:7].transpose(0, 3, 1, 2).astype(np.float16))
    # max pool: exact values and first-maximum offsets; NaN wins
    out, idx = ops.max_pool(launch, np, x, (2, 2), (2, 2), (0, 0), (3, 3))
    ref_pool = MaxPool2d()
    np.testing.assert_array_equal(out, ref_pool.forward(x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)))
    np.testing.assert_array_equal(idx, ref_pool.idx)
    # add + relu: the float16 sum is rounded once, as NumPy's float16 add
    s, mask = ops.add_relu(launch, np, x, y)
    np.testing.assert_array_equal(s, np.maximum(x + y, np.float16(0)))
    np.testing.assert_array_equal(mask, (x + y) > 0)
    # batch norm: statistics and affine in float32, per-channel vectors float32
    xb = np.nan_to_num(x)
    mean, var = ops.batch_norm_stats(launch, np, xb, 42)
    assert mean.dtype == var.dtype == np.float32
    np.testing.assert_allclose(mean, xb.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, xb.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-5)
    scale, shift = np.float32([0.5, 2.0, -1.0]), np.float32([0.1, 0.0, 3.0])
    ybn = ops.batch_norm_apply(launch, np, xb, 42, mean, scale, shift)
    assert ybn.dtype == np.float16
    np.testing.assert_array_equal(ybn, _half_ref(
        lambda a: (a - mean[:, None, None]) * scale[:, None, None] + shift[:, None, None], xb))
