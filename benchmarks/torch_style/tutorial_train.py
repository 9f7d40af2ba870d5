"""Train a CNN on CIFAR-10 as PyTorch's "Training a classifier" tutorial does, written for PyTorch.

A user's script in plain PyTorch (torch and torchvision imports, per-sample transforms, a DataLoader
with worker processes, the zero_grad/backward/step loop). benchmarks/bench_three_ways.py runs it on
minires after the import rewrite (../shared/tools/torch_rewrite.py); it runs unchanged on PyTorch.

    python tutorial_train.py --data DIR [--model resnet20|small_cnn] [--epochs 3] [--batch-size 128]

DIR holds CIFAR-10 as torchvision's CIFAR10 reads it (cifar-10-batches-py/) or as image folders
(train/<class>/*.jpg, test/<class>/*.jpg). Each epoch prints its training images per second.
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Net(nn.Module):
    """Three conv-BN-ReLU stages (32, 64, 128 channels), two max-pools, global average pool, a linear head."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (a 1x1 conv-BN projection where the shape changes)."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20: a 16-channel stem, three stages of three blocks (16, 32, 64 channels)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


def datasets(root, limit_train, limit_test):
    transform_train = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    transform_test = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    if os.path.isdir(os.path.join(root, "cifar-10-batches-py")):
        trainset = torchvision.datasets.CIFAR10(root=root, train=True, download=False, transform=transform_train)
        testset = torchvision.datasets.CIFAR10(root=root, train=False, download=False, transform=transform_test)
    else:
        trainset = torchvision.datasets.ImageFolder(os.path.join(root, "train"), transform=transform_train)
        testset = torchvision.datasets.ImageFolder(os.path.join(root, "test"), transform=transform_test)
    g = torch.Generator().manual_seed(0)
    if limit_train:
        trainset = torch.utils.data.Subset(trainset, torch.randperm(len(trainset), generator=g)[:limit_train].tolist())
    if limit_test:
        testset = torch.utils.data.Subset(testset, torch.randperm(len(testset), generator=g)[:limit_test].tolist())
    return trainset, testset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="./data")
    parser.add_argument("--model", default="resnet20", choices=("resnet20", "small_cnn"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the per-epoch images/s here")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainset, testset = datasets(args.data, args.limit_train, args.limit_test)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=args.batch_size, shuffle=True,
                                              num_workers=args.workers)
    testloader = torch.utils.data.DataLoader(testset, batch_size=500, shuffle=False, num_workers=args.workers)

    net = (ResNet20() if args.model == "resnet20" else Net()).to(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    rates = []
    for epoch in range(args.epochs):
        net.train()
        running_loss, seen, start = 0.0, 0, time.perf_counter()
        for i, (inputs, labels) in enumerate(trainloader):
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            seen += labels.size(0)
        rates.append(seen / (time.perf_counter() - start))
        scheduler.step()
        print(f"[epoch {epoch + 1}] loss: {running_loss / (i + 1):.3f}, {rates[-1]:.0f} img/s")

    correct, total = 0, 0
    net.eval()
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images.to(device))
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels.to(device)).sum().item()
    print(f"Accuracy of the network on the {total} test images: {100 * correct / total:.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images_per_s": rates, "accuracy": correct / total}, f)


if __name__ == "__main__":
    main()
