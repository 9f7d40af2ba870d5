"""Seed 004's ResNet (blocks with a 1x1 projection shortcut where the shape changes), trained briefly on
CIFAR-10 and evaluated with `torch.max(outputs.data, 1)` and `(predicted == labels).sum().item()`.
Two fixes to the article's code: `fc` takes the 512 features the adaptive pool leaves (the article wrote
512 * 7 * 7), and `layers` sets the blocks per stage (the article ignored it).

Run: python shortcut_resnet.py --data ./data
     python shortcut_resnet.py --data DIR --layers 1,1,1,1 --max-batches 2
"""
import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
import torchvision
import torchvision.transforms as transforms


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super(ResidualBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()  # identity when the shape is kept
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = nn.ReLU(inplace=True)(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return nn.ReLU(inplace=True)(out)


class ResNet(nn.Module):
    def __init__(self, layers, classes):
        super(ResNet, self).__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 64, layers[0])
        self.layer2 = self._make_layer(64, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(128, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(256, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)  # the pool leaves (N, 512, 1, 1)

    def _make_layer(self, in_channels, out_channels, blocks, stride=1):
        layers = [ResidualBlock(in_channels, out_channels, stride)]
        for _ in range(1, blocks):
            layers.append(ResidualBlock(out_channels, out_channels))
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.maxpool(self.bn1(self.conv1(x)))  # (N, 64, H/4, W/4)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)               # (N, 512)
        return self.fc(out)


parser = argparse.ArgumentParser(description="seed 004: a ResNet with projection shortcuts on CIFAR-10")
parser.add_argument("--data", default="./data")
parser.add_argument("--layers", default="2,2,2,2")
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--max-batches", type=int, default=0, help="stop every pass after this many batches (0: all)")
args = parser.parse_args()

torch.manual_seed(1)
device = 'cuda' if torch.cuda.is_available() else 'cpu'

transform = transforms.Compose([transforms.ToTensor(),
                                transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
train_set = torchvision.datasets.CIFAR10(root=args.data, train=True, download=True, transform=transform)
test_set = torchvision.datasets.CIFAR10(root=args.data, train=False, download=True, transform=transform)
train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False)

model = ResNet(layers=[int(n) for n in args.layers.split(',')], classes=10).to(device)
print(model)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

model.train()
for i, (images, labels) in enumerate(train_loader):
    if args.max_batches and i >= args.max_batches:
        break
    images = images.to(device)
    labels = labels.to(device)
    loss = criterion(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print('step {} loss {:.4f}'.format(i + 1, loss.item()))

model.eval()
with torch.no_grad():
    correct = 0
    total = 0
    for images, labels in test_loader:
        images = images.to(device)
        labels = labels.to(device)
        outputs = model(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
    print('Test accuracy of the model on the {} test images: {} % ({}/{})'
          .format(total, 100 * correct / total, correct, total))
