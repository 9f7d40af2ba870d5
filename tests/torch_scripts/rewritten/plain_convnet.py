"""Seed 001's model and loop as a PyTorch user runs it: eight 3x3 convs trained with Adam (lr 1e-3), then
the test loop with `torch.max(outputs.data, 1)`. The article defines no loaders; here they are torchvision's
CIFAR-10 with ToTensor, and the net gets the ReLUs, pooling and classifier a CrossEntropyLoss needs.

Run: python plain_convnet.py --data ./data --epochs 10
     python plain_convnet.py --data DIR --epochs 1 --max-batches 3   (a smoke run)
"""
import argparse

import minires as torch
import minires.nn as nn
import minires.optim as optim
from minires.vision import datasets, transforms
from minires.utils.data import DataLoader
from minires.autograd import Variable  # the articles' era; a no-op wrapper in PyTorch >= 0.4
parser = argparse.ArgumentParser(description="seed 001: a plain conv net on CIFAR-10 with Adam")
parser.add_argument("--data", default="./data", help="folder that holds (or receives) cifar-10-batches-py")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=0.001)
parser.add_argument("--max-batches", type=int, default=0, help="stop every pass after this many batches (0: all)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)

# ---- data: the loaders the article leaves out
transform = transforms.ToTensor()
train_set = datasets.CIFAR10(root=args.data, train=True, download=True, transform=transform)
test_set = datasets.CIFAR10(root=args.data, train=False, download=True, transform=transform)
train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False)


# ---- model: the article's eight convs (it calls them a residual network; there are no skips)
class PlainConvNet(nn.Module):
    def __init__(self, num_classes=10):
        super(PlainConvNet, self).__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(32, 32, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.conv6 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.conv7 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.conv8 = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        x = self.pool(x)                                      # (N, 16, 16, 16)
        x = self.relu(self.conv4(self.relu(self.conv3(x))))
        x = self.pool(x)                                      # (N, 32, 8, 8)
        x = self.relu(self.conv6(self.relu(self.conv5(x))))
        x = self.pool(x)                                      # (N, 64, 4, 4)
        x = self.relu(self.conv8(self.relu(self.conv7(x))))
        x = torch.flatten(self.gap(x), 1)                     # (N, 128)
        return self.fc(x)


model = PlainConvNet()
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=args.lr)

# ---- train
steps_per_epoch = len(train_loader) if not args.max_batches else min(args.max_batches, len(train_loader))
for epoch in range(args.epochs):
    model.train()
    for i, (images, labels) in enumerate(train_loader):
        if args.max_batches and i >= args.max_batches:
            break
        images, labels = Variable(images), Variable(labels)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        print('Epoch [{}/{}], Step [{}/{}], Loss: {:.4f}'
              .format(epoch + 1, args.epochs, i + 1, steps_per_epoch, loss.item()))

# ---- test
model.eval()
correct = 0
total = 0
with torch.no_grad():
    for i, (images, labels) in enumerate(test_loader):
        if args.max_batches and i >= args.max_batches:
            break
        outputs = model(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print('Accuracy of the network on the {} test images: {} % ({}/{})'
      .format(total, 100 * correct / total, correct, total))
