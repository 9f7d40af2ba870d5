"""minires.onnx.export: every model of minires.models, checked by ONNX Runtime, and the bad-input rules.

Logits of ONNX Runtime must equal minires's eval-mode logits within 1e-5 relative (max abs diff / max abs
value), at batch 1 and 8. Batch norms get random running statistics and affine parameters, so that the
exported BatchNormalization nodes are exercised (fresh models have mean 0, var 1, weight 1, bias 0).
"""
import glob
import io
import os
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="minires.onnx needs onnx: pip install 'minires[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX Runtime checks need onnxruntime: pip install onnxruntime")

import minires as mr  # noqa: E402
import minires.onnx as mronnx  # noqa: E402
from minires import dispatch, nn  # noqa: E402
from minires.tensor import Function, observers  # noqa: E402
from onnx_check import TOL, minires_out, ort_run, randomize, relative, to_bytes  # noqa: E402

CIFAR_JPEG = "/work/shared/data/cifar10-jpeg"



# ---- every model in minires.models --------------------------------------------------------------------
IMAGENET = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
HEAVY = {"resnet101", "resnet152", "resnet110"}  # deeper copies of the blocks above: exported at batch 1 only


@pytest.fixture(scope="module")
def built():
    """One built (and randomized) model per name, shared by the tests of this module."""
    cache = {}

    def get(name):
        if name not in cache:
            mr.manual_seed(0)
            cache[name] = randomize(mr.models.get(name, num_classes=10))
        return cache[name]
    return get


@pytest.mark.parametrize("name", sorted(set(mr.models.names()) - HEAVY))
def test_every_model_exports_and_onnxruntime_matches_at_batch_1_and_8(built, name):
    model = built(name)
    size = 64 if name in IMAGENET else 32
    x1 = mr.randn(1, 3, size, size)
    blob = to_bytes(model, x1, dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    proto = onnx.load_from_string(blob)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    rng = np.random.default_rng(1)
    for batch in (1, 8):
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        (got,) = ort_run(blob, x)
        assert got.shape == (batch, 10)
        assert relative(got, minires_out(model, x)) < TOL


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_the_deep_resnets_export(name):
    """Their blocks are resnet50's and resnet20's, checked by ONNX Runtime above; here every layer must be there."""
    model = mr.models.get(name, num_classes=10)
    # export_params=False keeps the parameters' data (up to 240 MB) out of this test: they become inputs
    proto = onnx.load_from_string(to_bytes(model, mr.randn(1, 3, 32, 32), export_params=False))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Conv") == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert ops.count("BatchNormalization") == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    params = [i.name for i in proto.graph.input][1:]
    assert sorted(params) == sorted(k for k in model.state_dict() if "num_batches" not in k)


def test_a_static_batch_of_8_matches_and_refuses_another_batch(built):
    model = built("resnet20")
    x = mr.randn(8, 3, 32, 32)
    blob = to_bytes(model, x)
    (got,) = ort_run(blob, x.numpy())
    assert relative(got, minires_out(model, x.numpy())) < TOL
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # no dynamic axis: the batch is fixed
        ort_run(blob, np.zeros((3, 3, 32, 32), np.float32))


@pytest.mark.skipif(not os.path.isdir(CIFAR_JPEG), reason=f"no CIFAR-10 JPEG copy at {CIFAR_JPEG}")
def test_real_cifar_images_give_the_same_logits(built):
    from PIL import Image
    files = sorted(glob.glob(os.path.join(CIFAR_JPEG, "test", "*", "*.jpg")))[::997][:8]
    assert files
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in files])
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    x = ((images - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)  # (N, 3, 32, 32)
    for name in ("resnet20", "resnet9"):
        model = built(name)
        blob = to_bytes(model, mr.tensor(x[:1]), dynamic_axes={"input": [0], "output": [0]})
        (got,) = ort_run(blob, x)
        assert relative(got, minires_out(model, x)) < TOL


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_reference_and_fast_paths_export_the_same_graph(built, impl):
    model = built("resnet18")
    x = mr.randn(2, 3, 32, 32)
    with dispatch.use_impl(impl):
        blob = to_bytes(model, x)
    proto = onnx.load_from_string(blob)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Conv") == 20 and ops.count("BatchNormalization") == 20 and ops.count("Gemm") == 1
    (got,) = ort_run(blob, x.numpy())
    assert relative(got, minires_out(model, x.numpy())) < TOL


def test_initializers_are_the_state_dict_names_and_batch_norm_stays_a_node(built):
    model = built("resnet20")
    proto = onnx.load_from_string(to_bytes(model, mr.randn(1, 3, 32, 32)))
    names = {i.name for i in proto.graph.initializer}
    state = model.state_dict()
    assert names == {k for k in state if not k.endswith("num_batches_tracked")}
    for init in proto.graph.initializer:  # the values too, not only the names
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), np.asarray(state[init.name].numpy()))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) == len(bns)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]


def test_the_model_modes_are_restored_and_no_observer_is_left(built):
    model = built("resnet20").train()
    model.layer1.eval()
    with pytest.raises(TypeError):  # even when the forward fails
        mronnx.export(model, (mr.randn(1, 3, 32, 32), "not a tensor"), io.BytesIO())
    to_bytes(model, mr.randn(1, 3, 32, 32))
    assert model.training and model.layer2.training and not model.layer1.training
    assert not model.layer1[0].bn1.training
    assert observers == [] and "forward" not in model.layer1.__dict__
    model.eval()


def test_several_inputs_and_outputs_keep_their_names_and_order():
    class Two(nn.Module):
        def forward(self, a, b):
            return {"sum": a + b, "prod": a * b, "a": a}
    a, b = mr.randn(2, 3), mr.randn(1, 3)
    blob = to_bytes(Two(), (a, b), input_names=["a", "b"], output_names=["s", "p"])
    proto = onnx.load_from_string(blob)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["s", "p", "output_2"]
    s, p, same = ort_run(blob, a.numpy(), b.numpy())
    np.testing.assert_allclose(s, (a + b).numpy(), rtol=1e-6)
    np.testing.assert_allclose(p, (a * b).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(same, a.numpy())


def test_export_params_false_makes_the_parameters_inputs():
    model = nn.Linear(3, 2)
    proto = onnx.load_from_string(to_bytes(model, mr.randn(4, 3), export_params=False))
    assert not proto.graph.initializer
    assert [i.name for i in proto.graph.input] == ["input", "weight", "bias"]


def test_constant_only_ops_are_folded():
    class Scaled(nn.Module):
        def forward(self, x):
            return x * (mr.ones(3) * 2 + 1)  # the factor is computed in forward from constants only
    x = mr.randn(2, 3)
    folded = onnx.load_from_string(to_bytes(Scaled(), x))
    kept = onnx.load_from_string(to_bytes(Scaled(), x, do_constant_folding=False))
    assert [n.op_type for n in folded.graph.node].count("Mul") == 1
    assert [n.op_type for n in kept.graph.node].count("Mul") == 2
    (got,) = ort_run(folded.SerializeToString(), x.numpy())
    np.testing.assert_allclose(got, x.numpy() * 3, rtol=1e-6)


def test_is_in_onnx_export_is_true_during_the_recording_only():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(mronnx.is_in_onnx_export())
            return x + 1
    to_bytes(Probe(), mr.randn(2))
    assert seen == [True] and not mronnx.is_in_onnx_export()


# ---- bad input -----------------------------------------------------------------------------------------
class Foo(Function):
    name = "foo"

    def forward(self, x):
        return x * 2


class Attn(nn.Module):
    def forward(self, x):
        return Foo.apply(x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.attn = nn.Conv2d(2, 2, 1), Attn()

    def forward(self, x):
        return self.attn(self.conv(x))


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer3 = nn.Sequential(nn.Identity(), Block())

    def forward(self, x):
        return self.layer3(x)


def test_an_op_without_export_names_op_and_module_path_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(mronnx.UnsupportedOperatorError) as info:
        mronnx.export(Deep(), mr.randn(1, 2, 3, 3), str(out))
    assert str(info.value) == "layer3.1.attn: op 'foo' has no ONNX export"
    assert os.listdir(tmp_path) == []


def test_an_unmapped_op_the_outputs_do_not_need_is_pruned():
    class Side(nn.Module):
        def forward(self, x):
            Foo.apply(x)  # computed and thrown away
            return x * 3
    (got,) = ort_run(to_bytes(Side(), mr.ones(2)), np.ones(2, np.float32))
    np.testing.assert_array_equal(got, [3, 3])


def test_a_value_read_into_python_warns_that_the_graph_follows_this_input():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            scale = float(self.fc.weight.abs().max())  # a parameter: the same for every input, no warning
            return x * scale if x.sum() > 0 else -x
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_bytes(Branchy(), mr.ones(1, 2))
    tracer = [w for w in caught if issubclass(w.category, mronnx.TracerWarning)]
    assert len(tracer) == 1 and "Branchy (top level)" in str(tracer[0].message)
    assert "follows the branch this input took" in str(tracer[0].message)


def test_bad_output_paths_are_one_clear_line_and_nothing_is_written(tmp_path):
    model, x = nn.Linear(2, 2), mr.randn(1, 2)
    with pytest.raises(ValueError, match="is a folder") as info:
        mronnx.export(model, x, str(tmp_path))
    assert "\n" not in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        mronnx.export(model, x, str(tmp_path / "file" / "m.onnx"))
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            mronnx.export(model, x, str(locked / "m.onnx"))
    assert sorted(os.listdir(tmp_path)) in (["file"], ["file", "locked"])


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr("minires.io.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mronnx.export(nn.Linear(2, 2), mr.randn(1, 2), str(tmp_path / "m.onnx"))
    assert os.listdir(tmp_path) == []


def test_bad_arguments_are_clear():
    model, x = nn.Linear(2, 2), mr.randn(1, 2)
    with pytest.raises(ValueError, match="opset_version must be an int from 11"):
        mronnx.export(model, x, io.BytesIO(), opset_version=7)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['bogus'\\]"):
        mronnx.export(model, x, io.BytesIO(), bogus=1)
    with pytest.raises(TypeError, match="args must be a Tensor or a tuple"):
        mronnx.export(model, "x", io.BytesIO())
    with pytest.raises(TypeError, match="model must be a minires.nn.Module"):
        mronnx.export(lambda t: t, x, io.BytesIO())
    with pytest.raises(ValueError, match="out of range"):
        mronnx.export(model, x, io.BytesIO(), dynamic_axes={"input": [2]})
    with pytest.warns(UserWarning, match="not an input or output name"):
        mronnx.export(model, x, io.BytesIO(), dynamic_axes={"images": [0]})


def test_a_model_on_the_gpu_exports_through_its_cuda_paths(standin):
    """On the CuPy stand-in (tests/cupy_standin.py): the CUDA fast paths record as their references do."""
    mr.manual_seed(0)
    model = randomize(mr.models.get("resnet20", num_classes=10, widths=(4, 8, 8)))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = minires_out(model, x)
    model.to("cuda")
    blob = to_bytes(model, mr.tensor(x).to("cuda"))
    (got,) = ort_run(blob, x)
    assert relative(got, want) < TOL
    assert model.conv1.weight.device.startswith("cuda")


def test_another_threads_ops_are_not_recorded(tmp_path):
    import threading

    import minires.onnx
    from minires.onnx import recorder

    seen = {}

    class Waits(mr.nn.Module):
        def forward(self, x):
            def other():  # another thread's work while the export records: not part of the graph
                seen["recording there"] = recorder.is_recording()
                seen["value"] = float((mr.ones(3) * 2 + 1).sum())
            t = threading.Thread(target=other)
            t.start()
            t.join()
            seen["recording here"] = recorder.is_recording()
            return x * 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", minires.onnx.TracerWarning)  # the other thread's float() must not warn
        minires.onnx.export(Waits(), mr.randn(2, 3), str(tmp_path / "m.onnx"))
    assert seen == {"recording there": False, "value": 9.0, "recording here": True}
    onnx = pytest.importorskip("onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert ops.count("Mul") == 1 and not {"Add", "ReduceSum"} & set(ops), ops
