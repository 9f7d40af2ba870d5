"""minires.onnx.export of models written in PyTorch style (VGG, MobileNet, DenseNet, squeeze-excite), and of a
PyTorch script after the import rewrite (`torch.onnx.export(net, dummy, "net.onnx")`)."""
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="minires.onnx needs onnx: pip install 'minires[onnx]'")
pytest.importorskip("onnxruntime", reason="the ONNX Runtime checks need onnxruntime: pip install onnxruntime")

import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
from minires import nn  # noqa: E402
from onnx_check import TOL, minires_out, ort_run, randomize, relative, to_bytes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REWRITE = os.path.join(ROOT, "..", "shared", "tools", "torch_rewrite.py")


class VGGish(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for width in (8, "M", 16, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, width, kernel_size=3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(16 * 4, 32), nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.classifier(x), dim=1)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise (stride), 1x1 project, residual when shapes match."""

    def __init__(self, cin, cout, stride, expand=4):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.Hardswish(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1), InvertedResidual(8, 16, 2),
                                    nn.Conv2d(16, 16, 3, padding=2, dilation=2))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.norm, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return mr.cat([x, self.conv(F.relu(self.norm(x)))], 1)


class DenseNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4))
        self.transition = nn.Sequential(nn.BatchNorm2d(16), nn.Conv2d(16, 8, 1), nn.AvgPool2d(2, 2))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.transition(self.block(self.stem(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(mr.flatten(x, 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Linear(c, c // r), nn.Linear(c // r, c)

    def forward(self, x):
        s = self.pool(x).flatten(1)  # (N, C)
        s = mr.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class SENetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.se = SqueezeExcite(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y = y * mr.sigmoid(y)  # swish by hand
        y = F.pad(self.se(y), (1, 1, 1, 1))
        y = mr.nn.functional.gelu(y, approximate="tanh")
        return self.fc(y.sum(dim=(2, 3)) / 36.0)


@pytest.mark.parametrize("cls", [VGGish, MobileNetish, DenseNetish, SENetish])
def test_pytorch_style_models_export(cls):
    mr.manual_seed(3)
    model = randomize(cls())
    x = mr.randn(1, 3, 16, 16)
    blob = to_bytes(model, x, input_names=["images"], output_names=["logits"],
                    dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}})
    xs = np.random.default_rng(2).standard_normal((5, 3, 16, 16)).astype(np.float32)
    (got,) = ort_run(blob, xs)
    assert relative(got, minires_out(model, xs)) < TOL


def test_torch_onnx_export_of_a_pytorch_script_writes_a_file(tmp_path):
    import minires as torch  # what the import rewrite makes of `import torch`
    net, dummy = VGGish(), torch.randn(1, 3, 16, 16)
    torch.onnx.export(net, dummy, str(tmp_path / "net.onnx"), export_params=True, opset_version=17,
                      do_constant_folding=True, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}}, verbose=False)
    proto = onnx.load(str(tmp_path / "net.onnx"))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17 and os.listdir(tmp_path) == ["net.onnx"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch_size"


SCRIPT = """
import torch
import torch.nn as nn

net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
dummy = torch.randn(1, 3, 8, 8)
torch.onnx.export(net, dummy, "net.onnx", input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}})
"""


@pytest.mark.skipif(not os.path.isfile(REWRITE), reason=f"no import rewrite tool at {REWRITE}")
def test_a_rewritten_pytorch_script_exports_in_a_fresh_interpreter(tmp_path):
    """`torch.onnx` resolves on first use after `import torch` became `import minires as torch`."""
    (tmp_path / "script.py").write_text(SCRIPT)
    subprocess.run([sys.executable, REWRITE, "script.py", "rewritten.py"], cwd=tmp_path, check=True)
    assert "import minires as torch" in (tmp_path / "rewritten.py").read_text()
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "rewritten.py"], cwd=tmp_path, check=True, env=env, timeout=120)
    (got,) = ort_run((tmp_path / "net.onnx").read_bytes(), np.zeros((3, 3, 8, 8), np.float32))
    assert got.shape == (3, 5)
