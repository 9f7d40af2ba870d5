"""Every op's backward, on every implementation, leaves its incoming gradient as it was (issue 21).

One gradient array can feed several nodes (an add hands its gradient to both inputs, a reshape hands
on a view), so a backward that wrote into its incoming gradient would corrupt its siblings'. On NumPy
the backward walk passes a read-only view and NumPy refuses the write; CuPy arrays have no such flag,
so there the write would go unnoticed. This file is the check for both: each Function of the library
(found by walking Function's subclasses, so a new op fails here until it has a case) runs on the
implementation it is (reference on NumPy and on the CuPy stand-in, CPU fast paths, also split over
threads, CUDA fast paths on the stand-in and, with CuPy and a GPU, on the GPU), and after
`out.backward(g)` g (random; also channels-last for 4-D outputs) must hold what it held.
"""
import gc
import importlib
import pkgutil
from typing import Callable, NamedTuple

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import backend, dispatch, parallel, tuning
from minires.autograd import _Adapter
from minires.distributed.comm import SingleProcess
from minires.distributed.sync_batchnorm import SyncBatchNormFunction
from minires.tensor import Function

for _m in pkgutil.walk_packages(mr.__path__, "minires."):  # every module, so no Function is missed
    try:
        if not _m.name.endswith("__main__"):
            importlib.import_module(_m.name)
    except ModuleNotFoundError as exc:  # an optional dependency (an extra) that is not installed
        if (exc.name or "minires").split(".")[0] == "minires":
            raise


def library_functions() -> dict:
    """Every Function subclass defined in minires, by class name (autograd's adapters for user Functions aside)."""
    found, stack = {}, [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if issubclass(sub, _Adapter) or not sub.__module__.startswith("minires."):
                continue  # user-defined (mr.autograd.Function) or test-local classes
            found[sub.__name__] = sub
            stack.append(sub)
    return found


class Maker:
    """Inputs of one case: random leaves that require grad (recorded), and constants, on the case's device."""

    def __init__(self, device, dtype, seed):
        self.device, self.dtype, self.rng, self.leaves = device, np.dtype(dtype), np.random.default_rng(seed), []

    def move(self, a, device=None):
        return backend.to_device(np.asarray(a), device or self.device)

    def leaf(self, *shape, low=None, channels_last=False, device=None, dtype=None):
        a = self.rng.standard_normal(shape) if low is None else self.rng.uniform(low, low + 1, shape)
        a = a.astype(dtype or self.dtype)
        if channels_last:  # an NCHW view of NHWC memory
            a = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        t = mr.Tensor(self.move(a, device), requires_grad=True)
        self.leaves.append(t)
        return t

    def const(self, a, dtype=None):
        a = np.asarray(a, dtype=dtype or (self.dtype if np.asarray(a).dtype.kind == "f" else None))
        return mr.Tensor(self.move(a))

    def labels(self, n, classes):
        return self.const(self.rng.integers(0, classes, n).astype(np.int64))


def gradient_like(out, rng, channels_last=False, inf=False):
    """A random gradient of out's shape, dtype and device (channels-last memory or one inf if asked)."""
    g = rng.standard_normal(out.shape).astype(out.dtype)
    if inf:
        g.reshape(-1)[0] = np.inf
    if channels_last:
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return backend.to_device(g, out.device)  # the stand-in copies it in with its strides (order "K")


def assert_backward_leaves_gradient(out, leaves, g):
    """out.backward(g) must not change g, and must give every leaf a .grad like the leaf."""
    op = type(out.grad_fn).__name__
    before = backend.to_numpy(g).copy()  # .get() on the stand-in
    out.backward(mr.Tensor(g))
    after = backend.to_numpy(g)
    assert np.array_equal(after, before, equal_nan=True), (
        f"{op}: backward wrote into its incoming gradient of shape {tuple(g.shape)} "
        f"({int((after != before).sum())} of {before.size} values changed)")
    for i, t in enumerate(leaves):
        assert t.grad is not None, f"{op}: input {i} of shape {t.shape} got no gradient"
        assert (t.grad.shape, t.grad.dtype, t.grad.device) == (t.shape, t.dtype, t.device), (
            f"{op}: input {i} ({t.shape} {t.dtype} on {t.device}) got a gradient of "
            f"{t.grad.shape} {t.grad.dtype} on {t.grad.device}")


class Case(NamedTuple):
    run: Callable  # run(m: Maker) -> the output Tensor, made by the op under test
    modes: tuple  # where it runs: REF, CPU or CUDA below (the `mode_scope` fixture enters each)
    dtype: type = np.float64
    variant: str = ""
    inf_grad: bool = False  # also a gradient holding an inf (a fast path with a branch for it)


REF = ("reference-cpu", "reference-cuda")  # references on NumPy, and on the stand-in's device arrays
CPU = ("fast-cpu", "fast-cpu-split")  # CPU fast paths in one thread, and split over 3
CUDA = ("fast-cuda", "fast-gpu")  # CUDA fast paths on the stand-in (kernels.cu through the emulator), on a GPU


def _conv(stride=1, padding=1, groups=1, cl=False, out=4, k=3, c=4):
    def run(m):
        x = m.leaf(2, c, 5, 5, channels_last=cl)
        return F.conv2d(x, m.leaf(out, c // groups, k, k), m.leaf(out), stride=stride, padding=padding, groups=groups)
    return run


def _bn(training=True, cl=False, shape=(3, 2, 3, 3)):
    def run(m):
        x = m.leaf(*shape, channels_last=cl)
        C = shape[1]
        rm, rv = m.const(np.zeros(C)), m.const(np.ones(C))
        return F.batch_norm(x, rm, rv, m.leaf(C), m.leaf(C), training=training)
    return run


def _sync_bn(m):
    x = m.leaf(3, 2, 2, 2)
    rm, rv = m.move(np.zeros(2, m.dtype)), m.move(np.ones(2, m.dtype))
    return SyncBatchNormFunction.apply(x, m.leaf(2), m.leaf(2), running_mean=rm, running_var=rv,
                                       comm=SingleProcess())


def _to_device(direction):
    def run(m):  # runs on the stand-in: "cpu" to "cuda" and back
        if direction == "cuda":
            return m.leaf(2, 3, device="cpu").cuda()
        return m.leaf(2, 3, device="cuda").cpu()
    return run


def _relu_cl(m):  # the mask laid out like x: a C-order gradient takes the other branch than a channels-last one
    return F.relu(m.leaf(2, 3, 2, 2, channels_last=True))


def _cross_entropy(**kw):
    return lambda m: F.cross_entropy(m.leaf(4, 5), m.labels(4, 5), **kw)


def _pool(fn, cl=False, shape=(2, 3, 6, 6), **kw):
    return lambda m: fn(m.leaf(*shape, channels_last=cl), **kw)


# Function class name -> its cases. Fast paths run the same public call as their reference, on their device.
CASES = {
    # ---- ops/ (Tensor methods and mr.* forms) ----
    "Add": [Case(lambda m: m.leaf(3, 4) + m.leaf(4), REF)],
    "Sub": [Case(lambda m: m.leaf(3, 1) - m.leaf(3, 4), REF)],
    "Mul": [Case(lambda m: m.leaf(3, 4) * m.leaf(3, 4), REF)],
    "Div": [Case(lambda m: m.leaf(3, 4) / m.leaf(4, low=1.0), REF)],
    "Pow": [Case(lambda m: m.leaf(3, 4, low=0.5) ** m.leaf(3, 4), REF)],
    "Neg": [Case(lambda m: -m.leaf(3, 4), REF)],
    "MatMul": [Case(lambda m: m.leaf(2, 3, 4) @ m.leaf(4, 2), REF),
               Case(lambda m: m.leaf(4) @ m.leaf(2, 4, 3), REF, variant="vector-batch")],
    "Exp": [Case(lambda m: mr.exp(m.leaf(3, 4)), REF)],
    "Log": [Case(lambda m: mr.log(m.leaf(3, 4, low=0.5)), REF)],
    "Sqrt": [Case(lambda m: mr.sqrt(m.leaf(3, 4, low=0.5)), REF)],
    "Abs": [Case(lambda m: m.leaf(3, 4).abs(), REF)],
    "Maximum": [Case(lambda m: mr.maximum(m.leaf(3, 4), m.leaf(4)), REF)],
    "Minimum": [Case(lambda m: mr.minimum(m.leaf(3, 4), m.leaf(3, 1)), REF)],
    "Clamp": [Case(lambda m: m.leaf(3, 4).clamp(m.leaf(4, low=-1.5), m.leaf(3, 1, low=0.0)), REF),
              Case(lambda m: m.leaf(3, 4).clamp(-0.5, 0.5), REF, variant="numbers")],
    "Where": [Case(lambda m: mr.where(m.const(np.arange(12).reshape(3, 4) % 3 == 0), m.leaf(3, 4), m.leaf(4)),
                   REF)],
    "Cast": [Case(lambda m: m.leaf(3, 4).to(mr.float32), REF)],
    "ToDevice": [Case(_to_device("cuda"), ("reference-cuda",), variant="to-cuda"),
                 Case(_to_device("cpu"), ("reference-cuda",), variant="to-cpu")],
    "Clone": [Case(lambda m: m.leaf(3, 4).clone(), REF),
              Case(lambda m: m.leaf(2, 3, 2, 2).clone(memory_format=mr.channels_last), REF, variant="channels-last")],
    "Reshape": [Case(lambda m: m.leaf(3, 4).reshape(2, 6), REF)],
    "Permute": [Case(lambda m: m.leaf(2, 3, 4).permute(2, 0, 1), REF)],
    "GetItem": [Case(lambda m: m.leaf(4, 5)[1:, ::2], REF),
                Case(lambda m: m.leaf(4, 5)[m.const(np.array([0, 2, 0]))], REF, variant="advanced")],
    "Expand": [Case(lambda m: m.leaf(3, 1).expand(2, 3, 4), REF)],
    "Repeat": [Case(lambda m: m.leaf(2, 3).repeat(2, 1, 2), REF)],
    "Cat": [Case(lambda m: mr.cat([m.leaf(2, 3), m.leaf(2, 2)], dim=1), REF)],
    "Sum": [Case(lambda m: m.leaf(3, 4).sum(1), REF), Case(lambda m: m.leaf(3, 4).sum(), REF, variant="all")],
    "Mean": [Case(lambda m: m.leaf(3, 4).mean(0, keepdim=True), REF),
             Case(lambda m: m.leaf(3, 4).mean(), REF, variant="all")],
    "Max": [Case(lambda m: m.leaf(3, 4).amax(1), REF), Case(lambda m: m.leaf(3, 4).max(), REF, variant="all")],
    "TakeAlong": [Case(lambda m: m.leaf(3, 4).sort(1).values, REF),
                  Case(lambda m: m.leaf(3, 4).topk(2, 0).values, REF, variant="topk")],
    "SelectAlong": [Case(lambda m: m.leaf(3, 4).max(1).values, REF),
                    Case(lambda m: m.leaf(3, 4).min(0, keepdim=True).values, REF, variant="min-keepdim")],
    "Var": [Case(lambda m: m.leaf(3, 4).var(1), REF)],
    "Std": [Case(lambda m: m.leaf(3, 4).std(), REF)],
    "Norm": [Case(lambda m: m.leaf(3, 4).norm(), REF),
             *[Case(lambda m, p=p: m.leaf(3, 4).norm(p=p, dim=1), REF, variant=f"p={p}")
               for p in (1, 3, float("inf"), 0)]],
    # ---- functional/ references and their fast paths ----
    "ClampCPU": [Case(lambda m: m.leaf(3, 4).clamp(-0.5, 0.5), CPU),
                 Case(lambda m: m.leaf(2, 3, 2, 2, channels_last=True).clamp(min=0.0), CPU, variant="channels-last")],
    "ReLU": [Case(lambda m: F.relu(m.leaf(3, 4)), REF)],
    "ReLUCPU": [Case(lambda m: F.relu(m.leaf(3, 4)), CPU), Case(_relu_cl, CPU, variant="channels-last")],
    "ReLUCUDA": [Case(lambda m: F.relu(m.leaf(3, 4)), CUDA), Case(_relu_cl, CUDA, variant="channels-last")],
    "AddReLU": [Case(lambda m: F.add_relu(m.leaf(2, 3, 2, 2), m.leaf(2, 3, 2, 2)), REF)],
    "AddReLUCPU": [Case(lambda m: F.add_relu(m.leaf(2, 3, 2, 2), m.leaf(2, 3, 2, 2)), CPU),
                   Case(lambda m: F.add_relu(m.leaf(2, 3, 2, 2, channels_last=True),
                                             m.leaf(2, 3, 2, 2, channels_last=True)), CPU, variant="channels-last")],
    "AddReLUCUDA": [Case(lambda m: F.add_relu(m.leaf(2, 3, 2, 2), m.leaf(2, 3, 2, 2)), CUDA),
                    Case(lambda m: F.add_relu(m.leaf(2, 3, 2, 2, channels_last=True),
                                              m.leaf(2, 3, 2, 2, channels_last=True)), CUDA, variant="channels-last")],
    "BatchNorm": [Case(_bn(), REF), Case(_bn(training=False), REF, variant="eval")],
    "BatchNormCPU": [Case(_bn(), CPU), Case(_bn(training=False), CPU, variant="eval"),
                     Case(_bn(cl=True), CPU, variant="channels-last")],
    "BatchNormCUDA": [Case(_bn(), CUDA), Case(_bn(cl=True), CUDA, variant="channels-last"),
                      Case(_bn(shape=(3, 2, 4)), CUDA, variant="3d"),
                      Case(_bn(), CUDA, dtype=np.float16, variant="float16")],  # float32 statistics in the kernels
    "SyncBatchNormFunction": [Case(_sync_bn, REF)],
    "Conv2d": [Case(_conv(), REF), Case(_conv(stride=2, groups=2), REF, variant="stride2-groups2")],
    "Conv2dCPU": [Case(_conv(), CPU, variant="row-split-flip"), Case(_conv(stride=2), CPU, variant="im2col-col2im"),
                  Case(_conv(groups=2, cl=True), CPU, dtype=np.float16, variant="groups2-channels-last-float16"),
                  Case(_conv(k=1, padding=0, cl=True), CPU, variant="pointwise"),
                  Case(_conv(k=1, padding=0, stride=2), CPU, variant="pointwise-stride2"),
                  # 20 channels: too wide for row-split, O <= C: dx and dw from g's columns
                  Case(_conv(c=20), CPU, variant="shared-columns")],
    "DepthwiseConv2dCPU": [Case(_conv(groups=4), CPU), Case(_conv(stride=2, groups=4, cl=True, out=8), CPU,
                                                             variant="stride2-multiplier2-channels-last")],
    "GroupedConv2dCPU": [Case(_conv(groups=2), CPU, variant="flip"),
                         Case(_conv(stride=2, groups=2, cl=True, out=6), CPU, variant="col2im-channels-last")],
    "Conv2dCUDA": [Case(_conv(), CUDA, variant="flip"), Case(_conv(stride=2), CUDA, variant="col2im"),
                   Case(_conv(cl=True, padding=0), CUDA, variant="channels-last")],
    "DepthwiseConv2dCUDA": [Case(_conv(groups=4), CUDA), Case(_conv(stride=2, groups=4, cl=True, out=8), CUDA,
                                                               variant="stride2-multiplier2-channels-last")],
    "GroupedConv2dCUDA": [Case(_conv(groups=2), CUDA), Case(_conv(stride=2, groups=2, cl=True, out=6), CUDA,
                                                             variant="stride2-channels-last")],
    "Sigmoid": [Case(lambda m: F.sigmoid(m.leaf(3, 4)), REF)],
    "Tanh": [Case(lambda m: F.tanh(m.leaf(3, 4)), REF)],
    "GELU": [Case(lambda m: F.gelu(m.leaf(3, 4)), REF),
             Case(lambda m: F.gelu(m.leaf(3, 4), approximate="tanh"), REF, variant="tanh")],
    "GELUCPU": [Case(lambda m: F.gelu(m.leaf(3, 4)), CPU, dtype=np.float32)],  # supports() takes float32 only
    "LeakyReLU": [Case(lambda m: F.leaky_relu(m.leaf(3, 4), 0.1), REF)],
    "Dropout": [Case(lambda m: F.dropout(m.leaf(3, 4), 0.5, training=True), REF)],
    "LayerNorm": [Case(lambda m: F.layer_norm(m.leaf(2, 3, 4), (4,), m.leaf(4), m.leaf(4)), REF)],
    "Linear": [Case(lambda m: F.linear(m.leaf(2, 3, 4), m.leaf(5, 4), m.leaf(5)), REF)],
    "LinearCPU": [Case(lambda m: F.linear(m.leaf(2, 3, 4), m.leaf(5, 4), m.leaf(5)), CPU)],
    "CrossEntropy": [Case(_cross_entropy(), REF),
                     Case(_cross_entropy(reduction="none", label_smoothing=0.1), REF, variant="none-smoothed")],
    "CrossEntropyCUDA": [Case(_cross_entropy(), CUDA),
                         Case(_cross_entropy(reduction="none", label_smoothing=0.1), CUDA, variant="none-smoothed"),
                         Case(_cross_entropy(reduction="sum"), CUDA, variant="sum")],
    "Pad": [Case(lambda m, mode=mode: F.pad(m.leaf(2, 2, 4, 5), (1, 2, 2, 1), mode=mode), REF, variant=mode)
            for mode in ("constant", "reflect", "replicate", "circular")],
    "MaxPool2d": [Case(_pool(F.max_pool2d, kernel_size=2), REF),
                  Case(_pool(F.max_pool2d, kernel_size=3, stride=2, padding=1), REF, variant="padded")],
    "MaxPool2dCPU": [Case(_pool(F.max_pool2d, kernel_size=2), CPU, inf_grad=True),
                     Case(_pool(F.max_pool2d, cl=True, kernel_size=3, stride=2, padding=1), CPU,
                          variant="padded-channels-last", inf_grad=True)],
    "MaxPool2dCUDA": [Case(_pool(F.max_pool2d, kernel_size=2), CUDA),
                      Case(_pool(F.max_pool2d, cl=True, kernel_size=3, stride=2, padding=1), CUDA,
                           variant="padded-channels-last")],
    "AvgPool2d": [Case(_pool(F.avg_pool2d, kernel_size=3, stride=2, padding=1), REF)],
    "AvgPool2dCPU": [Case(_pool(F.avg_pool2d, kernel_size=3, stride=2, padding=1), CPU),
                     Case(_pool(F.avg_pool2d, cl=True, kernel_size=2), CPU, variant="channels-last")],
    "AdaptiveAvgPool2d": [Case(_pool(F.adaptive_avg_pool2d, shape=(2, 3, 5, 4), output_size=(2, 3)), REF)],
    "AdaptiveAvgPool2dCPU": [Case(_pool(F.adaptive_avg_pool2d, output_size=1), CPU, variant="global"),
                             Case(_pool(F.adaptive_avg_pool2d, cl=True, output_size=1), CPU,
                                  variant="global-channels-last"),
                             Case(_pool(F.adaptive_avg_pool2d, shape=(2, 3, 5, 4), output_size=(2, 3)), CPU,
                                  variant="bins")],
    "AdaptiveAvgPool2dCUDA": [Case(_pool(F.adaptive_avg_pool2d, output_size=1), CUDA),
                              Case(_pool(F.adaptive_avg_pool2d, cl=True, output_size=1), CUDA,
                                   variant="channels-last")],
    "Softmax": [Case(lambda m: F.softmax(m.leaf(3, 4), 1), REF)],
    "LogSoftmax": [Case(lambda m: F.log_softmax(m.leaf(3, 4), 0), REF)],
    "NLLLoss": [Case(lambda m: F.nll_loss(m.leaf(4, 5), m.labels(4, 5)), REF),
                Case(lambda m: F.nll_loss(m.leaf(4, 5, 2), m.const(np.array([[0, 1], [4, -100], [2, 2], [3, 0]])),
                                          weight=m.const(np.linspace(0.5, 1.5, 5)), reduction="none"),
                     REF, variant="weighted-ignored-none")],
    "MSELoss": [Case(lambda m: F.mse_loss(m.leaf(3, 4), m.leaf(3, 4)), REF),
                Case(lambda m: F.mse_loss(m.leaf(3, 4), m.leaf(3, 4), reduction="none"), REF, variant="none")],
    "Normalize": [Case(lambda m: F.normalize(m.leaf(3, 4)), REF),
                  Case(lambda m: F.normalize(m.leaf(3, 4), p=3.0, dim=0), REF, variant="p=3")],
}

PARAMS = [pytest.param(name, case, mode, id=f"{name}{'-' + case.variant if case.variant else ''}-{mode}",
                       marks=[pytest.mark.gpu] if mode.endswith("gpu") else [])  # conftest: CuPy and a GPU
          for name, cases in CASES.items() for case in cases for mode in case.modes]


def test_every_function_of_the_library_has_a_case():
    found = set(library_functions())
    missing, stale = sorted(found - set(CASES)), sorted(set(CASES) - found)
    assert not missing, f"Functions without a case in CASES (add one: the op, its inputs, where it runs): {missing}"
    assert not stale, f"CASES names classes the library no longer has (renamed or removed?): {stale}"
    assert len(found) > 60  # the walk did find the library's ops


def test_the_walk_finds_a_new_op_of_the_library_and_leaves_test_local_ones_out():
    new = type("BrandNewOp", (Function,), {"__module__": "minires.functional.brand_new"})
    found = library_functions()
    try:
        assert found.get("BrandNewOp") is new and "BrandNewOp" not in CASES  # so the test above would fail
        assert "_WritesIntoGradient" not in found and "_Adapter" not in found
    finally:
        del new, found
        gc.collect()  # __subclasses__ holds weak references: the class leaves the walk
    assert "BrandNewOp" not in library_functions()


@pytest.fixture
def mode_scope(request, monkeypatch):
    """Enter the implementation and device a mode names; yields the device for the case's inputs."""
    mode = request.param
    if mode.endswith("cuda"):
        request.getfixturevalue("standin")  # conftest: minires on tests/cupy_standin.py
    scope = dispatch.use_impl(mode.split("-")[0])  # "fast" too: MINIRES_IMPL=reference may be set
    scope.__enter__()
    request.addfinalizer(lambda: scope.__exit__(None, None, None))
    if mode == "fast-cpu-split":  # every CPU kernel splits even these tiny batches over 3 threads
        monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)
        previous = parallel.get_num_threads()
        parallel.set_num_threads(3)
        held = parallel.hold_blas()
        held.__enter__()
        request.addfinalizer(lambda: (held.__exit__(None, None, None), parallel.set_num_threads(previous)))
        # BLAS work (conv, linear) splits only while BLAS is held, as in the `device` fixture's cpu-split
        assert parallel.blas_held(), "fast-cpu-split: threadpoolctl cannot hold this BLAS"
    return "cpu" if mode.endswith("cpu") or mode == "fast-cpu-split" else "cuda"


@pytest.mark.parametrize("name, case, mode_scope", PARAMS, indirect=["mode_scope"])
def test_backward_leaves_its_incoming_gradient_unchanged(name, case, mode_scope):
    cls = library_functions()[name]
    extras, seed = [{}], 0  # a C-order gradient; then, where they apply, a channels-last one and one holding an inf
    while seed < len(extras):
        m = Maker(mode_scope, case.dtype, seed)
        out = case.run(m)
        assert type(out.grad_fn) is cls, f"the call ran {type(out.grad_fn).__name__}, not {name}"
        inputs = [p for p in out.grad_fn.parents if isinstance(p, mr.Tensor) and p.requires_grad]
        assert [id(p) for p in inputs] == [id(t) for t in m.leaves], "the op's inputs must be the case's leaves"
        if seed == 0:
            extras += [{"channels_last": True}] * (out.ndim == 4) + [{"inf": True}] * case.inf_grad
        assert_backward_leaves_gradient(out, m.leaves, gradient_like(out, m.rng, **extras[seed]))
        seed += 1


class _WritesIntoGradient(Function):
    """A deliberately bad op: its backward doubles its incoming gradient in place."""

    def forward(self, x):
        return x * 1

    def backward(self, g):
        g *= 2
        return g


def test_the_check_catches_a_backward_that_writes_into_its_gradient_on_the_standin(standin):
    x = mr.Tensor(standin.asarray(np.ones((2, 3))), requires_grad=True)
    out = _WritesIntoGradient.apply(x)
    g = standin.asarray(np.full((2, 3), 0.5))
    with pytest.raises(AssertionError, match="_WritesIntoGradient: backward wrote into its incoming gradient"):
        assert_backward_leaves_gradient(out, [x], g)
    assert x.grad.numpy().tolist() == [[1.0] * 3] * 2  # nothing stopped the write: g is doubled


def test_the_walk_refuses_that_write_on_numpy():
    x = mr.Tensor(np.ones((2, 3)), requires_grad=True)
    g = np.full((2, 3), 0.5)
    with pytest.raises(RuntimeError, match="wrote into"):
        assert_backward_leaves_gradient(_WritesIntoGradient.apply(x), [x], g)
    assert g.tolist() == [[0.5] * 3] * 2 and g.flags.writeable  # the caller's array untouched, still writeable
