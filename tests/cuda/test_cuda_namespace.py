"""minires.cuda, PyTorch's torch.cuda namespace: its answers without CuPy and on the CuPy stand-in, its
seeds that change nothing, torch.cuda.amp, and a script written for torch.cuda after the rewrite."""
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

import minires as mr
import minires.cuda.amp
from minires import backend
from minires.kernels.cuda import launcher

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT.parent / "shared" / "tools" / "torch_rewrite.py"


@pytest.fixture
def no_cupy():
    """minires as on a machine without CuPy, whatever this one has."""
    previous = backend.use_cupy(None)
    try:
        yield
    finally:
        backend.use_cupy(previous)


# ---- without CuPy or a GPU ------------------------------------------------------------------------
def test_without_a_gpu_the_queries_answer_and_the_waits_do_nothing(no_cupy):
    assert mr.cuda.is_available() is False and mr.cuda.device_count() == 0
    assert mr.cuda.memory_allocated() == 0
    assert mr.cuda.synchronize() is None and mr.cuda.synchronize("cuda:0") is None
    assert mr.cuda.empty_cache() is None


@pytest.mark.parametrize("call", [mr.cuda.current_device, lambda: mr.cuda.set_device(0),
                                  mr.cuda.get_device_name, lambda: mr.cuda.get_device_name("cuda:0")],
                         ids=["current_device", "set_device", "get_device_name", "get_device_name_cuda0"])
def test_without_a_gpu_the_device_calls_say_none_is_available(no_cupy, call):
    with pytest.raises(RuntimeError, match=r"minires\.cuda\.\w+: no CUDA device is available"):
        call()


@pytest.mark.parametrize("call, error, match", [
    (lambda: mr.cuda.synchronize("cpu"), ValueError, r"synchronize: argument 'device' must be a CUDA device.*'cpu'"),
    (lambda: mr.cuda.set_device("gpu:0"), ValueError, r"set_device: argument 'device' must be a CUDA device"),
    (lambda: mr.cuda.set_device(1.5), TypeError, r"set_device: argument 'device' must be an int.*float"),
    (lambda: mr.cuda.memory_allocated([0]), TypeError, r"memory_allocated: argument 'device'.*list"),
    (lambda: mr.cuda.manual_seed("seven"), TypeError, r"manual_seed: argument 'seed' must be an integer"),
    (lambda: mr.cuda.manual_seed_all(None), TypeError, r"manual_seed_all: argument 'seed' must be an integer"),
])
def test_bad_arguments_are_named_even_without_a_gpu(no_cupy, call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- seeds: there is no CUDA generator ------------------------------------------------------------
def test_cuda_seeds_change_nothing_and_minires_manual_seed_fixes_the_device_draws(standin):
    mr.manual_seed(3)
    expected = mr.randn(6).numpy()
    mr.manual_seed(3)
    mr.cuda.manual_seed(11)
    mr.cuda.manual_seed_all(12)
    assert np.array_equal(mr.randn(6).numpy(), expected)  # the CPU stream went on untouched
    mr.manual_seed(3)
    mr.cuda.manual_seed_all(99)
    on_device = mr.randn(6, device="cuda")
    assert on_device.device == "cuda:0" and np.array_equal(on_device.numpy(), expected)


# ---- on the CuPy stand-in -------------------------------------------------------------------------
def test_on_a_device_the_queries_answer_from_cupy(standin):
    assert mr.cuda.is_available() is True
    assert mr.cuda.device_count() == standin.cuda.runtime.getDeviceCount() == 1
    assert mr.cuda.current_device() == 0
    name = standin.cuda.runtime.getDeviceProperties(0)["name"].decode()
    gpu = types.SimpleNamespace(type="cuda", index=0)  # what a torch.device-like object offers
    assert [mr.cuda.get_device_name(d) for d in (None, 0, "cuda", "cuda:0", gpu)] == [name] * 5
    assert mr.cuda.set_device(0) is None and mr.cuda.set_device(-1) is None  # negative: nothing, as PyTorch
    with pytest.raises(ValueError, match=r"set_device: device 'cuda:1' does not exist: 1 CUDA device\(s\) visible"):
        mr.cuda.set_device("cuda:1")
    with pytest.raises(ValueError, match=r"get_device_name: device 2 does not exist"):
        mr.cuda.get_device_name(2)


def test_synchronize_waits_on_the_device(standin, monkeypatch):
    waited = []
    monkeypatch.setattr(standin.cuda.Device, "synchronize", lambda self: waited.append(self.id))
    mr.cuda.synchronize()
    mr.cuda.synchronize("cuda:0")
    mr.cuda.synchronize(0)
    assert waited == [0, 0, 0]


def test_memory_allocated_follows_the_live_device_arrays_and_empty_cache_frees_the_pool(standin):
    before = mr.cuda.memory_allocated()
    x = mr.zeros(1000, device="cuda")                  # float32: 4000 bytes
    assert mr.cuda.memory_allocated() - before == 4000
    view = x[::2]
    del x
    assert mr.cuda.memory_allocated() - before == 4000  # the view keeps the buffer alive
    del view
    assert mr.cuda.memory_allocated() == before
    freed = standin.get_default_memory_pool().freed
    mr.cuda.empty_cache()
    assert standin.get_default_memory_pool().freed == freed + 1


# ---- torch.cuda.amp -------------------------------------------------------------------------------
def test_cuda_amp_is_minires_amp():
    assert minires.cuda.amp is mr.cuda.amp
    assert mr.cuda.amp.GradScaler is mr.optim.GradScaler
    x = mr.randn(2, 4)
    with mr.cuda.amp.autocast():
        assert mr.nn.Linear(4, 3)(x).dtype == mr.float16
    with mr.cuda.amp.autocast(enabled=False, cache_enabled=False):
        assert mr.nn.Linear(4, 3)(x).dtype == mr.float32

    @mr.cuda.amp.autocast()
    def forward(t):
        return mr.nn.Linear(4, 3)(t)
    assert forward(x).dtype == mr.float16 and mr.amp.autocast_dtype() is None
    with pytest.raises(ValueError, match="autocast: only float16"):
        mr.cuda.amp.autocast(dtype=mr.float32)


SCRIPT = """
import torch
import torch.nn as nn
import torch.cuda.amp
from torch.cuda.amp import GradScaler, autocast

torch.manual_seed(0)
torch.cuda.manual_seed_all(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = nn.Linear(4, 2).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = GradScaler()
x, y = torch.randn(8, 4).to(device), torch.randn(8, 2).to(device)
for step in range(3):
    optimizer.zero_grad()
    with autocast():
        out = model(x)
        loss = ((out.float() - y) ** 2).mean()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    torch.cuda.synchronize()
print(device, out.dtype, torch.cuda.device_count(), loss.item() > 0)
"""


@pytest.mark.skipif(not TOOL.is_file(), reason="../shared/tools/torch_rewrite.py is not beside this checkout")
def test_a_script_written_for_torch_cuda_runs_after_the_rewrite(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    subprocess.run([sys.executable, str(TOOL), str(tmp_path / "train.py"), str(tmp_path / "mr_train.py")], check=True)
    env = {"PYTHONPATH": str(ROOT), "MINIRES_CUPY_MODULE": "not_a_cupy_module", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(tmp_path / "mr_train.py")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "float16", "0", "True"]


# ---- the namespace holds no kernel code; kernels.cu ships with the kernels --------------------------
def test_the_namespace_is_not_the_kernels_package():
    assert not any(hasattr(mr.cuda, n) for n in ("launcher", "Launcher", "source", "ops", "enabled"))
    assert launcher.SOURCE_PATH.parent == ROOT / "minires" / "kernels" / "cuda" and launcher.SOURCE_PATH.is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "kernels.cu" in package_data["minires.kernels.cuda"]


def test_legacy_cuda_tensor_types(standin):
    on_gpu, on_cpu = mr.zeros(2, device="cuda"), mr.zeros(2)
    assert isinstance(on_gpu, mr.cuda.FloatTensor) and not isinstance(on_cpu, mr.cuda.FloatTensor)
    assert isinstance(on_cpu, mr.FloatTensor) and not isinstance(on_gpu, mr.FloatTensor)
    assert on_gpu.type() == "torch.cuda.FloatTensor"
    assert mr.zeros(2, dtype=mr.int64, device="cuda").type(mr.cuda.FloatTensor).dtype == mr.float32
