"""What minires.save writes under a .pt name loads in PyTorch with torch.load(weights_only=True), equal.

Run with the PyTorch venv (it imports this checkout's minires, and PyTorch beside it):
    /tmp/torchvenv/bin/python benchmarks/check_torch_load.py

Checks, each printed as a line, exit status 1 if one fails:
1. resnet20's state_dict (trained one step, so BatchNorm's statistics and its 0-d int64
   num_batches_tracked have moved): every key, dtype, shape and value equal in PyTorch;
2. a small CNN with BatchNorm: PyTorch's own model takes the minires state_dict with a strict
   load_state_dict, and its logits equal minires's (float64);
3. a kuangliu-style checkpoint dict: "net" with module.-prefixed keys, acc (a NumPy float64), epoch,
   SGD (momentum) and Adam optimizer state_dicts and a scheduler's, nested lists/tuples/None/str/bytes,
   a Parameter and one tensor of each dtype; PyTorch's SGD and Adam take their state and step;
4. the time of mr.save/mr.load against torch.save/torch.load for a 45 MB state_dict (resnet18).
"""
from __future__ import annotations

import collections
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minires as mr  # noqa: E402
from minires import nn  # noqa: E402

FAILED = []


def report(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILED.append(name)


def equal(ours, theirs, where="obj") -> str:
    """'' when the minires object and what PyTorch loaded are equal, else where they differ."""
    if isinstance(ours, mr.Tensor):
        if not isinstance(theirs, torch.Tensor):
            return f"{where}: torch gave {type(theirs).__name__}"
        if isinstance(ours, nn.Parameter) != isinstance(theirs, torch.nn.Parameter):
            return f"{where}: Parameter lost or gained"
        a, b = ours.numpy(), theirs.detach().numpy()
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            return f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        return ""
    if isinstance(ours, np.ndarray):  # optimizer states hold NumPy copies, written as tensors
        return equal(mr.Tensor(ours), theirs, where)
    if isinstance(ours, np.generic):
        ours = ours.item()
    if type(ours) is not type(theirs) and not (isinstance(ours, dict) and type(theirs) is type(ours)):
        return f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
    if isinstance(ours, dict):
        if list(ours) != list(theirs):
            return f"{where}: keys {list(ours)[:4]} vs {list(theirs)[:4]}"
        return next((e for k in ours if (e := equal(ours[k], theirs[k], f"{where}[{k!r}]"))), "")
    if isinstance(ours, (list, tuple)):
        if len(ours) != len(theirs):
            return f"{where}: length {len(ours)} vs {len(theirs)}"
        return next((e for i, (x, y) in enumerate(zip(ours, theirs)) if (e := equal(x, y, f"{where}[{i}]"))), "")
    return "" if ours == theirs else f"{where}: {ours!r} vs {theirs!r}"


def check_resnet20(tmp: str) -> None:
    mr.manual_seed(0)
    model = mr.models.resnet20()
    model(mr.randn(4, 3, 32, 32)).sum().backward()
    sd = model.state_dict()
    path = os.path.join(tmp, "resnet20.pt")
    mr.save(sd, path)
    back = torch.load(path, weights_only=True)
    nbt = back["bn1.num_batches_tracked"]
    report("resnet20 state_dict", not equal(sd, back), equal(sd, back) or
           f"{len(back)} keys equal; bn1.num_batches_tracked {nbt.dtype} shape {tuple(nbt.shape)} = {int(nbt)}")


def small_cnn(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(3, 4, 3), lib.nn.BatchNorm2d(4), lib.nn.ReLU(), lib.nn.AdaptiveAvgPool2d(1),
                             lib.nn.Flatten(), lib.nn.Linear(4, 3))


def check_cnn_in_torch(tmp: str) -> None:
    mr.manual_seed(1)
    ours = small_cnn(mr).double()
    ours(mr.randn(8, 3, 10, 10, dtype=mr.float64)).sum().backward()  # running stats move
    ours.eval()
    path = os.path.join(tmp, "cnn.pth")
    mr.save(ours.state_dict(), path)
    theirs = small_cnn(torch).double().eval()
    theirs.load_state_dict(torch.load(path, weights_only=True))  # strict
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 10))
    diff = np.abs(ours(mr.tensor(x)).numpy() - theirs(torch.from_numpy(x)).detach().numpy()).max()
    report("small CNN: torch load_state_dict(strict) and logits", diff < 1e-12, f"max |logit diff| {diff:.1e}")


def check_checkpoint_dict(tmp: str) -> None:
    mr.manual_seed(2)
    net = small_cnn(mr)
    params = list(net.parameters())
    sgd = mr.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    adam = mr.optim.Adam(params, lr=1e-3)
    sched = mr.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    for opt in (sgd, adam):
        opt.zero_grad()
        net(mr.randn(2, 3, 8, 8)).sum().backward()
        opt.step()
    sched.step()
    dtypes = {name: mr.Tensor((np.arange(6).reshape(2, 3) * 3 - 7).astype(name)) for name in
              ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")}
    obj = {"net": collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items()),
           "acc": np.float64(93.2), "epoch": 5, "optimizer": sgd.state_dict(), "adam": adam.state_dict(),
           "scheduler": sched.state_dict(), "nested": [1, (2.5, None, "text", b"raw"), {"k": mr.ones(2)}, []],
           "param": nn.Parameter(mr.zeros(3)), "dtypes": dtypes, "scalar": mr.tensor(3)}
    path = os.path.join(tmp, "ckpt.pth")
    mr.save(obj, path)
    back = torch.load(path, weights_only=True)
    err = equal(obj, back)
    report("checkpoint dict (net, acc, epoch, optimizers, scheduler, nested, dtypes)", not err,
           err or f"equal; acc {back['acc']!r} ({type(back['acc']).__name__}), optimizer state keys "
           f"{sorted(back['optimizer']['state'][0])}, adam step {back['adam']['state'][0]['step']!r}")
    theirs = small_cnn(torch)
    theirs.load_state_dict({k[len("module."):]: v for k, v in back["net"].items()})
    tsgd = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    tadam = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    try:
        tsgd.load_state_dict(back["optimizer"])
        tadam.load_state_dict(back["adam"])
        theirs(torch.randn(2, 3, 8, 8)).sum().backward()
        tsgd.step()
        tadam.step()
        mom = tsgd.state[next(iter(theirs.parameters()))]["momentum_buffer"]
        ok = mom is not None and tadam.state[next(iter(theirs.parameters()))]["step"].item() == 2.0
        report("torch SGD/Adam load_state_dict and step", ok, "momentum kept, Adam at step 2")
    except Exception as exc:  # report, do not stop the other checks
        report("torch SGD/Adam load_state_dict and step", False, f"{type(exc).__name__}: {exc}")


def check_speed(tmp: str) -> None:
    sd = mr.models.resnet18().state_dict()
    tsd = collections.OrderedDict((k, torch.from_numpy(v.numpy().copy())) for k, v in sd.items())
    mb = sum(v.numpy().nbytes for v in sd.values()) / 2 ** 20
    times = {}
    for name, save, load in (("minires", mr.save, mr.load), ("torch", torch.save,
                                                             lambda p: torch.load(p, weights_only=True))):
        path = os.path.join(tmp, f"{name}.pt")
        best_s = best_l = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            save(sd if name == "minires" else tsd, path)
            t1 = time.perf_counter()
            load(path)
            t2 = time.perf_counter()
            best_s, best_l = min(best_s, t1 - t0), min(best_l, t2 - t1)
        times[name] = (best_s, best_l)
    cross = torch.load(os.path.join(tmp, "minires.pt"), weights_only=True)
    theirs_in_ours = mr.load(os.path.join(tmp, "torch.pt"))
    same = all(np.array_equal(cross[k].numpy(), sd[k].numpy()) and np.array_equal(theirs_in_ours[k].numpy(),
                                                                                  sd[k].numpy()) for k in sd)
    print(f"     resnet18 state_dict, {mb:.1f} MiB, best of 3 (save includes minires's fsync):")
    print(f"     {'':8s} {'save s':>8s} {'load s':>8s}")
    for name, (s, l) in times.items():
        print(f"     {name:8s} {s:8.3f} {l:8.3f}")
    report("resnet18 cross-load (torch reads minires's file, minires reads torch's)", same)


def main() -> int:
    print(f"# check_torch_load: {platform.node()}, Python {platform.python_version()}, torch {torch.__version__}, "
          f"NumPy {np.__version__}, minires {mr.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        check_resnet20(tmp)
        check_cnn_in_torch(tmp)
        check_checkpoint_dict(tmp)
        check_speed(tmp)
    print("all checks passed" if not FAILED else f"{len(FAILED)} check(s) FAILED: {FAILED}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
