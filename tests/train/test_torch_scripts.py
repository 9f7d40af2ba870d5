"""PyTorch scripts (tests/torch_scripts/: seed 001's loop, seed 003's and 004's ResNets, the CIFAR-10
tutorial, a CIFAR repository's train script) run end to end on minires after the import rewrite.

The committed copies in tests/torch_scripts/rewritten/ are what ../shared/tools/torch_rewrite.py makes of
the originals (checked byte for byte where the tool is present, and against the rule itself everywhere).
Each copy runs in a subprocess on a tiny CIFAR-10 in torchvision's layout (cifar-10-batches-py, pickled
python batches) or a tiny image folder, with its working directory in tmp_path; the test reads what it
prints and writes back and checks it against the data it made."""
import ast
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minires as mr
from torch_scripts._harness import (CLASSES, FLOAT, FOLDER_CLASSES, FOLDER_TRAIN, FOLDER_VAL, N_TEST, REWRITTEN, ROOT,
                                    SCRIPTS, check_data_untouched, files_written, launch, losses, run_script,
                                    snapshot, write_cifar, write_image_folder)

TOOL = ROOT.parent / "shared" / "tools" / "torch_rewrite.py"
ORIGINALS = sorted(p.name for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))  # _harness.py is ours


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny CIFAR-10 and a tiny image folder shared by the scripts (each test checks nothing is written there)."""
    root = tmp_path_factory.mktemp("torch-script-data")
    labels = write_cifar(root / "cifar")
    write_image_folder(root / "images")
    return {"cifar": root / "cifar", "images": root / "images", "labels": labels, "before": snapshot(root)}


# ---- the rewrite ------------------------------------------------------------------------------------------

def _mapped(module):
    """The rule: torchvision... -> minires.vision..., torch... -> minires..., anything else unchanged."""
    for old, new in (("torchvision", "minires.vision"), ("torch", "minires")):
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return module


def _bindings(stmts):
    """name -> what it refers to, for import statements: ('module', path) or ('attr', module, name)."""
    bound = {}
    for node in stmts:
        if isinstance(node, ast.Import):
            for a in node.names:
                bound[a.asname or a.name.split(".")[0]] = ("module", a.name if a.asname else a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                bound[a.asname or a.name] = ("attr", node.module, a.name)
    return bound


def _imported_modules(stmts):
    return {a.name for n in stmts if isinstance(n, ast.Import) for a in n.names} | {
        n.module for n in stmts if isinstance(n, ast.ImportFrom)}


class _DropImports(ast.NodeTransformer):
    def visit_Import(self, node):
        return None

    visit_ImportFrom = visit_Import


def _import_groups(tree):
    """The import statements of a module in order, those sharing a line (`import a; import b`) as one group."""
    groups = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            groups.setdefault(node.lineno, []).append(node)
    return [groups[k] for k in sorted(groups)]


@pytest.mark.parametrize("name", ORIGINALS)
def test_rewritten_copy_follows_the_rule(name):
    """Against the rule, not the tool: only imports change; each binds the same names to the mapped modules."""
    original, rewritten = ast.parse((SCRIPTS / name).read_text()), ast.parse((REWRITTEN / name).read_text())
    old_groups, new_groups = _import_groups(original), _import_groups(rewritten)
    assert len(old_groups) == len(new_groups)
    for old, new in zip(old_groups, new_groups):
        want = {k: (v[0], _mapped(v[1])) + v[2:] for k, v in _bindings(old).items()}
        got = _bindings(new)
        if "minires" not in want:  # `import minires.utils.data; import minires as torch` also binds minires
            got.pop("minires", None)
        assert got == want, (ast.unparse(old[0]), ast.unparse(new[0]))
        # every module the original imported (torch.nn of `import torch.nn`) is imported, mapped
        assert {_mapped(m) for m in _imported_modules(old)} <= _imported_modules(new), ast.unparse(old[0])
    assert any(_mapped(m) != m for g in old_groups for m in _imported_modules(g))
    assert not any(re.match(r"torch(vision)?(\.|$)", m) for g in new_groups for m in _imported_modules(g))
    # everything but the imports is the same program
    assert ast.dump(_DropImports().visit(original)) == ast.dump(_DropImports().visit(rewritten))


@pytest.mark.skipif(not TOOL.is_file(), reason="../shared/tools/torch_rewrite.py is not beside this checkout")
@pytest.mark.parametrize("name", ORIGINALS)
def test_committed_copy_is_the_tools_output(name, tmp_path):
    subprocess.run([sys.executable, str(TOOL), str(SCRIPTS / name), str(tmp_path / name)], check=True)
    assert (tmp_path / name).read_text() == (REWRITTEN / name).read_text(), \
        f"tests/torch_scripts/rewritten/{name} drifted: rerun the tool on tests/torch_scripts/{name}"


# ---- the scripts, end to end ------------------------------------------------------------------------------

def _np(value):
    return value.numpy() if isinstance(value, mr.Tensor) else np.asarray(value)


def test_plain_convnet_seed001(data, tmp_path):
    out = run_script("plain_convnet.py", ["--data", data["cifar"], "--epochs", 1, "--max-batches", 3,
                                          "--batch-size", 8], tmp_path)
    steps = re.findall(r"Epoch \[1/1\], Step \[(\d+)/3\], Loss: (" + FLOAT + ")", out)
    assert [int(s) for s, _ in steps] == [1, 2, 3]
    assert all(0 < float(v) < 20 for _, v in steps), steps  # finite, near ln(10) at the start
    m = re.search(r"Accuracy of the network on the (\d+) test images: (" + FLOAT + r") % \((\d+)/(\d+)\)", out)
    assert m, out
    total, correct = int(m[1]), int(m[3])
    assert total == int(m[4]) == N_TEST  # three batches of 8 cover the 20 test images
    assert 0 <= correct <= total and float(m[2]) == pytest.approx(100 * correct / total)
    assert files_written(tmp_path) == []
    check_data_untouched(data)


def _resnet_parameters(block, layers, num_classes):
    """Parameter count of seed 003's ResNet, counted layer by layer (conv weights, BN weight + bias, fc)."""
    expansion = 1 if block == "basic" else 4
    count, inplanes = 3 * 64 * 7 * 7 + 2 * 64, 64
    for planes, blocks, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
        for b in range(blocks):
            if block == "basic":
                count += inplanes * planes * 9 + planes * planes * 9 + 4 * planes
            else:
                count += inplanes * planes + planes * planes * 9 + planes * 4 * planes + 2 * (planes + planes + 4 * planes)
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                count += inplanes * planes * expansion + 2 * planes * expansion
            inplanes = planes * expansion
    return count + 512 * expansion * num_classes + num_classes


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_torchvision_resnet_seed003_on_an_image_folder(data, tmp_path, block):
    out = run_script("torchvision_resnet.py", ["--data", data["images"], "--block", block, "--layers", "1,1,1,1",
                                               "--batch-size", 4, "--max-batches", 2], tmp_path)
    n_train, n_val = FOLDER_TRAIN * len(FOLDER_CLASSES), FOLDER_VAL * len(FOLDER_CLASSES)
    assert f"classes: {list(FOLDER_CLASSES)} train images: {n_train} val images: {n_val}" in out
    assert f"parameters: {_resnet_parameters(block, [1, 1, 1, 1], len(FOLDER_CLASSES))}" in out
    assert len(losses(out, r"epoch 0 batch \d loss")) == 2
    assert all(math.isfinite(v) for v in losses(out, r"epoch 0 batch \d loss"))
    m = re.search(r"val accuracy: (" + FLOAT + r") % \((\d+)/(\d+)\)", out)
    assert m and int(m[3]) == n_val and float(m[1]) == pytest.approx(100 * int(m[2]) / n_val, abs=0.01)
    assert files_written(tmp_path) == []
    check_data_untouched(data)


def test_shortcut_resnet_seed004(data, tmp_path):
    out = run_script("shortcut_resnet.py", ["--data", data["cifar"], "--layers", "1,1,1,1", "--batch-size", 8,
                                            "--max-batches", 2], tmp_path)
    assert out.count("ResidualBlock(") == 4 and "(fc): Linear(in_features=512, out_features=10, bias=True)" in out
    steps = losses(out, r"step \d loss")
    assert len(steps) == 2 and all(0 < v < 20 for v in steps)
    m = re.search(r"on the (\d+) test images: (" + FLOAT + r") % \((\d+)/(\d+)\)", out)
    assert m and int(m[1]) == int(m[4]) == N_TEST and float(m[2]) == pytest.approx(100 * int(m[3]) / N_TEST)
    assert files_written(tmp_path) == []
    check_data_untouched(data)


def test_cifar_tutorial(data, tmp_path):
    from PIL import Image
    env = {"CIFAR_ROOT": str(data["cifar"]), "EPOCHS": "1", "BATCH_SIZE": "4", "WORKERS": "2", "PRINT_EVERY": "1",
           "MAX_BATCHES": "3"}
    out = run_script("cifar_tutorial.py", [], tmp_path, env=env)
    steps = re.findall(r"\[1,\s+(\d+)\] loss: (" + FLOAT + ")", out)
    assert [int(i) for i, _ in steps] == [1, 2, 3] and all(0 < float(v) < 20 for _, v in steps)
    assert "Finished Training" in out
    assert len(re.search(r"batch labels: (.*)", out)[1].split()) == 4
    assert set(re.search(r"batch labels: (.*)", out)[1].split()) <= set(CLASSES)
    # the test loader is not shuffled: its first batch is the first four test images
    test_labels = data["labels"]["test_batch"]
    assert re.search(r"GroundTruth: (.*)", out)[1].split() == [CLASSES[i] for i in test_labels[:4]]
    # make_grid of 4 images: one row, 2-pixel padding -> 4 * 34 + 2 wide, 36 high
    assert Image.open(tmp_path / "train_batch.png").size == (4 * 34 + 2, 36)
    state = mr.load(tmp_path / "cifar_net.pth")
    assert {k: tuple(_np(v).shape) for k, v in state.items()} == {
        "conv1.weight": (8, 3, 5, 5), "conv1.bias": (8,), "conv2.weight": (16, 8, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (100, 400), "fc1.bias": (100,), "fc2.weight": (10, 100), "fc2.bias": (10,)}
    overall = re.search(r"on the (\d+) test images: (\d+) % \((\d+)/(\d+)\)", out)
    assert overall and int(overall[1]) == N_TEST
    per_class = re.findall(r"Accuracy for class: (\w+)\s+is (" + FLOAT + r") % \((\d+)/(\d+)\)", out)
    assert [c for c, *_ in per_class] == list(CLASSES)
    # classes[label] counted each test image under its own class
    assert [int(n) for *_, n in per_class] == np.bincount(test_labels, minlength=10).tolist()
    assert sum(int(k) for _, _, k, _ in per_class) == int(overall[3])
    assert sorted(files_written(tmp_path)) == ["cifar_net.pth", "train_batch.png"]
    check_data_untouched(data)
    # under manual_seed the two worker processes deliver what the main process alone does, in the same order
    (tmp_path / "in_process").mkdir()
    assert run_script("cifar_tutorial.py", [], tmp_path / "in_process", env=dict(env, WORKERS="0")) == out


def _small_vgg_keys(prefix):
    keys = ["classifier.weight", "classifier.bias"]
    for conv, bn in ((0, 1), (4, 5), (8, 9)):  # conv, BN, ReLU, max pool per stage
        keys += [f"features.{conv}.weight"] + [f"features.{bn}.{k}" for k in (
            "weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    return {prefix + k for k in keys}


TRAIN_ARGS = ["--epochs", 1, "--max-batches", 3, "--batch-size", 8, "--workers", 2, "--data-parallel", "--t-max", 4,
              "--lr", 0.1]
NEXT_LR = 0.1 * (1 + math.cos(math.pi / 4)) / 2  # cosine annealing, T_max=4, after one epoch


def check_train_checkpoint(ckpt):
    """cifar_train.py's checkpoint after one epoch of TRAIN_ARGS."""
    assert set(ckpt) == {"net", "acc", "epoch", "optimizer", "scheduler"}
    assert ckpt["epoch"] == 0
    assert set(ckpt["net"]) == _small_vgg_keys("module.")  # saved through nn.DataParallel
    for bn in (1, 5, 9):
        tracked = _np(ckpt["net"][f"module.features.{bn}.num_batches_tracked"])
        assert tracked.shape == () and int(tracked) == 3  # three training batches
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(NEXT_LR) and group["momentum"] == 0.9 and len(group["params"]) == 11
    assert len(ckpt["optimizer"]["state"]) == 11  # one momentum buffer per parameter
    assert ckpt["scheduler"]["last_epoch"] == 1


def test_cifar_train_checkpoint_and_resume(data, tmp_path):
    args = ["--data", data["cifar"]] + TRAIN_ARGS
    out = run_script("cifar_train.py", args, tmp_path)
    assert "Epoch: 0 | lr: 0.100000" in out
    train_lines = re.findall(r"\[(\d)/3\] Loss: (" + FLOAT + r") \| Acc: " + FLOAT + r"% \((\d+)/(\d+)\)", out)
    assert [(int(b), int(n)) for b, _, _, n in train_lines] == [(1, 8), (2, 16), (3, 24)]
    test_line = re.findall(r"\[1/1\] Loss: (" + FLOAT + r") \| Acc: (" + FLOAT + r")% \((\d+)/(\d+)\)", out)
    assert len(test_line) == 1 and int(test_line[0][3]) == N_TEST
    acc = 100.0 * int(test_line[0][2]) / N_TEST
    assert files_written(tmp_path) == ["checkpoint/ckpt.pth"]

    ckpt = mr.load(tmp_path / "checkpoint" / "ckpt.pth")
    check_train_checkpoint(ckpt)
    assert ckpt["acc"] == pytest.approx(acc)

    out = run_script("cifar_train.py", args + ["--resume"], tmp_path)
    assert "resumed: epoch 0, best acc %.3f" % acc in out
    assert "Epoch: 1 | lr: %.6f" % NEXT_LR in out and "Epoch: 0" not in out
    check_data_untouched(data)


PYTORCH_CKPT = SCRIPTS / "fixtures" / "pytorch_ckpt.pth"  # see test_cifar_train_resumes_a_pytorch_checkpoint


@pytest.mark.parametrize("fixture", ["pytorch_ckpt.pth", "pytorch_ckpt_legacy.pth"])
def test_cifar_train_evaluates_a_pytorch_checkpoint_as_pytorch_does(data, tmp_path, fixture):
    """--evaluate on PyTorch's checkpoint: PyTorch 2.13 printed "test loss 2.321152 | acc 10.000% (2/20)"
    for these weights on this test set (the original script, same arguments). The legacy copy is the same
    dict saved again by PyTorch with _use_new_zipfile_serialization=False (the pre-1.6 format)."""
    (tmp_path / "checkpoint").mkdir()
    shutil.copyfile(PYTORCH_CKPT.parent / fixture, tmp_path / "checkpoint" / "ckpt.pth")
    out = run_script("cifar_train.py", ["--data", data["cifar"]] + TRAIN_ARGS + ["--evaluate"], tmp_path)
    m = re.search(r"test loss (" + FLOAT + r") \| acc (" + FLOAT + r")% \((\d+)/(\d+)\)", out)
    assert m, out
    assert float(m[1]) == pytest.approx(2.321152, abs=2e-6) and (int(m[3]), int(m[4])) == (2, N_TEST)
    assert files_written(tmp_path) == ["checkpoint/ckpt.pth"]
    check_data_untouched(data)


def test_cifar_train_resumes_a_pytorch_checkpoint(data, tmp_path):
    """fixtures/pytorch_ckpt.pth: what PyTorch 2.13 (torch.save, zip format) wrote running the original
    tests/torch_scripts/cifar_train.py with TRAIN_ARGS on this tiny CIFAR-10 (write_cifar, seed 0)."""
    (tmp_path / "checkpoint").mkdir()
    shutil.copyfile(PYTORCH_CKPT, tmp_path / "checkpoint" / "ckpt.pth")
    ckpt = mr.load(tmp_path / "checkpoint" / "ckpt.pth")
    check_train_checkpoint(ckpt)
    assert ckpt["acc"] == 10.0  # PyTorch printed "[1/1] Loss: 2.321 | Acc: 10.000% (2/20)"
    out = run_script("cifar_train.py", ["--data", data["cifar"]] + TRAIN_ARGS + ["--resume"], tmp_path)
    assert "resumed: epoch 0, best acc 10.000" in out
    assert "Epoch: 1 | lr: %.6f" % NEXT_LR in out and "Epoch: 0" not in out
    check_data_untouched(data)


def _torchvision_resnet18_keys():
    """torchvision's resnet18 state_dict names: stem, 4 stages of 2 BasicBlocks (downsample in stages 2-4), fc."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn] + ["fc.weight", "fc.bias"]
    for stage in range(1, 5):
        for b in range(2):
            p = f"layer{stage}.{b}."
            keys += [p + "conv1.weight", p + "conv2.weight"] + [p + f"bn{i}.{k}" for i in (1, 2) for k in bn]
            if stage > 1 and b == 0:
                keys += [p + "downsample.0.weight"] + [p + f"downsample.1.{k}" for k in bn]
    return set(keys)


def test_cifar_train_with_torchvision_resnet18(data, tmp_path):
    out = run_script("cifar_train.py", ["--data", data["cifar"], "--epochs", 1, "--max-batches", 2, "--batch-size", 4,
                                        "--workers", 0, "--arch", "resnet18", "--lr", 0.01], tmp_path)
    assert all(math.isfinite(v) for v in losses(out, r"\] Loss:"))
    net = mr.load(tmp_path / "checkpoint" / "ckpt.pth")["net"]
    assert set(net) == _torchvision_resnet18_keys() and len(net) == 122
    assert tuple(_np(net["fc.weight"]).shape) == (10, 512) and int(_np(net["bn1.num_batches_tracked"])) == 2
    assert files_written(tmp_path) == ["checkpoint/ckpt.pth"]
    check_data_untouched(data)


def test_a_missing_api_stops_the_script_on_its_line_naming_it(tmp_path):
    proc = launch("compiled_model.py", [], tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("AttributeError: minires does not provide torch.compile (PyTorch API)"), proc.stderr
    source = (REWRITTEN / "compiled_model.py").read_text().splitlines()
    lineno = source.index("    model = torch.compile(model)") + 1
    assert f'compiled_model.py", line {lineno}, in <module>' in proc.stderr
    # hasattr() keeps working, so a script that asks first runs on
    out = run_script("compiled_model.py", ["--guarded"], tmp_path, timeout=60)
    assert "torch.compile is not available" in out and "logits: (4, 10)" in out
