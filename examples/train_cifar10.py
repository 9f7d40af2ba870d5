"""Train a ResNet on CIFAR-10 with the minires library API, top to bottom in one file.

    python examples/train_cifar10.py                                  # ResNet-20, 5 epochs, CPU
    python examples/train_cifar10.py --data ../shared/data/cifar10-jpeg --epochs 1 --limit_train 5000
    python examples/train_cifar10.py --device cuda --model resnet56 --epochs 30

Any name in the config block can be overridden as --name value. The `minires train` command does
the same with checkpoints, resuming, metrics files and plots (minires/train/trainer.py).
"""
import sys
import time

import numpy as np

import minires as mr
import minires.functional as F
from minires import models, optim
from minires.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, DataLoader, default_data_dir
from minires.data import transforms as T

# ---- config -------------------------------------------------------------------------------------
model_name = "resnet20"
data = None               # a CIFAR-10 directory; None downloads to $MINIRES_DATA or ~/.cache/minires
device = "cpu"            # "cuda" with CuPy and a GPU
epochs = 5
batch_size = 128
lr = 0.2                  # peak of the one-cycle schedule (SGD + Nesterov, batch 128)
pct_start = 0.25          # fraction of steps spent warming up
momentum = 0.9
weight_decay = 5e-4       # conv/linear weights only
label_smoothing = 0.1
seed = 0
limit_train = None        # e.g. 5000 for a quick look
for arg, value in zip(sys.argv[1::2], sys.argv[2::2]):  # --name value overrides
    name = arg.lstrip("-")
    old = globals()[name]
    globals()[name] = value if old is None or isinstance(old, str) else type(old)(value)

# ---- data ---------------------------------------------------------------------------------------
root = data or default_data_dir()
train_set = CIFAR10(root, train=True, download=data is None)
test_set = CIFAR10(root, train=False, download=data is None)
if limit_train is not None:
    keep = np.sort(np.random.default_rng(seed).permutation(len(train_set))[:int(limit_train)])
    train_set.data, train_set.targets = train_set.data[keep], train_set.targets[keep]
augment = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                     T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=seed, transform=augment, device=device)
test_loader = DataLoader(test_set, batch_size=500, transform=T.Normalize(CIFAR10_MEAN, CIFAR10_STD), device=device)

# ---- model --------------------------------------------------------------------------------------
mr.manual_seed(seed)
model = models.get(model_name, num_classes=len(train_set.classes)).to(device)
print(f"{model_name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
      f"{len(train_set)} train / {len(test_set)} test images on {device}")

# ---- optimizer: no weight decay on BatchNorm parameters and biases ------------------------------
decay = [p for p in model.parameters() if p.ndim > 1]
no_decay = [p for p in model.parameters() if p.ndim <= 1]
optimizer = optim.SGD([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=lr, momentum=momentum, nesterov=True)
scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train_loader),
                                          pct_start=pct_start)

# ---- loop ---------------------------------------------------------------------------------------
for epoch in range(epochs):
    model.train()
    train_loader.set_epoch(epoch)  # augmentation and order depend only on (seed, epoch)
    t0, seen, total_loss = time.perf_counter(), 0, 0.0
    for step, (x, y) in enumerate(train_loader):
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        seen += len(y)
        total_loss += loss.item() * len(y)
        if step % 50 == 0:
            print(f"epoch {epoch + 1} step {step}/{len(train_loader)}: loss {loss.item():.4f}, "
                  f"lr {scheduler.get_last_lr()[0]:.4f}, {seen / (time.perf_counter() - t0):.0f} img/s")
    train_time = time.perf_counter() - t0

    model.eval()
    correct = 0
    with mr.no_grad():
        for x, y in test_loader:
            correct += int((model(x).argmax(dim=1).numpy() == y.numpy()).sum())
    print(f"epoch {epoch + 1}/{epochs}: train loss {total_loss / seen:.4f}, test accuracy "
          f"{correct / len(test_set):.4f}, {seen / train_time:.0f} img/s")
