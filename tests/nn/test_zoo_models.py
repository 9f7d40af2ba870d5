"""benchmarks/zoo_models.py under minires, through the benchmark's own import rewrite (bench_zoo.load_zoo): every
model trains one step on a tiny batch with finite gradients everywhere, and its parameter count matches a closed
form (VGG-11, ResNet-18, MobileNetV2) and PyTorch's count of the same source."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires import parallel

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_zoo.py"
_spec = importlib.util.spec_from_file_location("bench_zoo", BENCH)
bench_zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_zoo)
ZOO = bench_zoo.load_zoo("mr")

# (parameters, parameter tensors) of each model built from the same zoo_models.py by PyTorch 2.13
# (/tmp/torchvenv/bin/python: sum(p.numel() for p in m.parameters()), len(list(m.parameters()))).
TORCH_COUNTS = {
    "vgg11": (9228362, 26), "resnet18": (11173962, 62), "preact_resnet18": (11172170, 56),
    "densenet121": (6956298, 362), "densenet_bc100": (769162, 299), "mobilenetv2": (2236682, 158),
    "shufflenetv2": (1263854, 170), "efficientnet_b0": (4020358, 213), "regnetx_200mf": (2319482, 134),
    "resnext29_32x4d": (4775754, 95), "resnext29_2x64d": (9130314, 95), "dla": (15142970, 119),
}


def count(model):
    ps = list(model.parameters())
    return sum(int(np.prod(p.shape)) for p in ps), len(ps)


# ---- the rewrite ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("import torch", "import minires as torch"),
    ("    import torch.nn as nn", "    import minires.nn as nn"),
    ("import torch.nn.functional as F", "import minires.nn.functional as F"),
    ("from torch.nn import functional as F", "from minires.nn import functional as F"),
    ("from torch import nn", "from minires import nn"),
    ("import torch, numpy as np", "import minires as torch, numpy as np"),
    ("import torchvision", "import torchvision"),  # not torch: untouched (the zoo imports no torchvision)
    ("x = torch.cat([a, b], 1)  # import torch", "x = torch.cat([a, b], 1)  # import torch"),
])
def test_rewrite_imports_lines(line, expected):
    assert bench_zoo.rewrite_imports(line) == expected


def test_rewrite_refuses_an_import_that_binds_torch_through_a_submodule():
    with pytest.raises(ValueError, match=r"rewrite_imports: .*import torch\.nn"):
        bench_zoo.rewrite_imports("import torch.nn")


def test_rewritten_zoo_imports_only_minires():
    src = bench_zoo.rewrite_imports(Path(bench_zoo.ZOO).read_text())
    imports = [ln.strip() for ln in src.splitlines() if ln.strip().startswith(("import ", "from "))]
    assert imports == ["import minires as torch", "import minires.nn as nn", "import minires.nn.functional as F"]
    assert ZOO.torch is mr and ZOO.nn is mr.nn


# ---- every model trains ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ZOO.MODELS))
def test_model_forward_backward_gives_finite_gradients(name):
    mr.manual_seed(0)
    model = ZOO.MODELS[name]().train()
    x = mr.tensor(np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32))
    y = mr.tensor(np.array([3, 8]))
    out = model(x)
    assert tuple(out.shape) == (2, 10)
    loss = ZOO.F.cross_entropy(out, y)
    assert np.isfinite(float(loss))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        g = p.grad.numpy()
        assert g.shape == tuple(p.shape), f"{name}.{pname}"
        assert np.isfinite(g).all(), f"{name}.{pname} has a non-finite gradient"
        assert np.any(g != 0), f"{name}.{pname}: gradient all zero"


def test_benchmark_child_runs_a_minires_step():
    before = parallel.get_num_threads()
    try:
        res = bench_zoo.run_one("mr", "shufflenetv2", batch=2, steps=1, warmup=0, threads=1)
    finally:
        parallel.set_num_threads(before)
    assert res["threads"] == 1 and res["ms"] > 0 and res["params"] == TORCH_COUNTS["shufflenetv2"][0]


# ---- parameter counts --------------------------------------------------------------------------------------------

def conv(cin, cout, k, groups=1, bias=False):
    return k * k * (cin // groups) * cout + (cout if bias else 0)


def test_vgg11_parameter_count_closed_form():
    widths = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    expected = sum(conv(a, b, 3) + 2 * b for a, b in zip(widths, widths[1:])) + 512 * 10 + 10
    assert expected == 9_228_362
    assert count(ZOO.MODELS["vgg11"]())[0] == expected


def test_resnet18_parameter_count_closed_form():
    expected = conv(3, 64, 3) + 2 * 64  # stem
    cin = 64
    for w in (64, 128, 256, 512):  # two BasicBlocks a stage: 2 convs + 2 BNs each, a projection where the shape changes
        expected += conv(cin, w, 3) + conv(w, w, 3) + 4 * w + (conv(cin, w, 1) + 2 * w if cin != w else 0)
        expected += 2 * conv(w, w, 3) + 4 * w
        cin = w
    expected += 512 * 10 + 10
    assert count(ZOO.MODELS["resnet18"]())[0] == expected


def test_mobilenetv2_parameter_count_closed_form():
    expected, cin = conv(3, 32, 3) + 2 * 32, 32
    for t, cout, n, _ in ZOO.MOBILENETV2:  # the paper's table: expansion, channels, repeats
        for _ in range(n):
            mid = cin * t
            expand = conv(cin, mid, 1) + 2 * mid if t != 1 else 0
            expected += expand + conv(mid, mid, 3, groups=mid) + 2 * mid + conv(mid, cout, 1) + 2 * cout
            cin = cout
    expected += conv(320, 1280, 1) + 2 * 1280 + 1280 * 10 + 10
    assert count(ZOO.MODELS["mobilenetv2"]())[0] == expected


@pytest.mark.parametrize("name", sorted(TORCH_COUNTS))
def test_parameter_count_matches_pytorch(name):
    assert count(ZOO.MODELS[name]()) == TORCH_COUNTS[name]


def test_every_model_has_a_pytorch_count():
    assert sorted(TORCH_COUNTS) == sorted(ZOO.MODELS)


# ---- the table's arithmetic ----------------------------------------------------------------------------------------

def test_summarise_takes_the_faster_layout_and_the_geometric_mean():
    def runs(*ms):
        return [{"ms": v, "threads": 2, "params": 5} for v in ms]
    row = bench_zoo.summarise("a", {"mr": runs(300, 100, 200), "torch_cl": runs(50, 60, 40),
                                    "torch_nchw": runs(100, 100, 100)})
    assert (row["mr_ms"], row["torch_ms"], row["layout"], row["ratio"]) == (200, 50, "channels_last", 4.0)
    other = dict(row, model="b", ratio=1.0)
    lines = bench_zoo.summary_lines([row, other])
    assert lines[0].endswith(f"{math.sqrt(4.0):.2f}x") and lines[1] == "worst: a 4.00x"


def test_cli_names_an_unknown_model_and_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        bench_zoo.main(["--models", "resnet18,nosuch", "--no-torch"])
    err = capsys.readouterr().err
    assert "--models: unknown nosuch" in err and "mobilenetv2" in err
