"""CIFAR-10 training in the style of the popular CIFAR repositories' main.py: argparse with --lr and
--resume, per-image augmentation (random crop with 4-pixel padding, horizontal flip), SGD + cosine
annealing, `nn.DataParallel` on GPUs, a progress line per batch, and the best checkpoint
{'net', 'acc', 'epoch', 'optimizer', 'scheduler'} in ./checkpoint/ckpt.pth, which --resume continues from.

Run: python cifar_train.py --lr 0.1 --epochs 200
     python cifar_train.py --resume --lr 0.01 --epochs 10
     python cifar_train.py --evaluate   (the checkpoint's test loss and accuracy)
     python cifar_train.py --arch resnet18 --lr 0.05
     python cifar_train.py --data DIR --epochs 1 --max-batches 3 --batch-size 8   (a smoke run)
"""
import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torch.backends.cudnn as cudnn
import torch.utils.data

import torchvision
import torchvision.transforms as transforms

parser = argparse.ArgumentParser(description='CIFAR-10 training')
parser.add_argument('--lr', default=0.1, type=float, help='learning rate')
parser.add_argument('--resume', '-r', action='store_true', help='resume from ./checkpoint/ckpt.pth')
parser.add_argument('--data', default='./data', help='folder holding cifar-10-batches-py')
parser.add_argument('--epochs', default=200, type=int, help='epochs to run (from the resumed one on)')
parser.add_argument('--t-max', default=200, type=int, help='T_max of the cosine schedule')
parser.add_argument('--batch-size', default=128, type=int)
parser.add_argument('--workers', default=2, type=int)
parser.add_argument('--max-batches', default=0, type=int, help='stop every pass after this many batches (0: all)')
parser.add_argument('--data-parallel', action='store_true', help='wrap the net in nn.DataParallel on the CPU too')
parser.add_argument('--evaluate', action='store_true', help="test the checkpoint's weights and exit")
parser.add_argument('--arch', default='vgg', choices=['vgg', 'resnet18'], help="resnet18: torchvision's")
args = parser.parse_args()

device = 'cuda' if torch.cuda.is_available() else 'cpu'
torch.manual_seed(0)
torch.cuda.manual_seed_all(0)
cudnn.benchmark = True  # cuDNN picks its fastest conv algorithms; no effect without cuDNN
best_acc = -1.0  # best test accuracy so far (below any real one, so the first test saves)
start_epoch = 0

# ---- data
print('==> Preparing data..')
transform_train = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])
transform_test = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])
trainset = torchvision.datasets.CIFAR10(root=args.data, train=True, download=True, transform=transform_train)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=args.batch_size, shuffle=True,
                                          num_workers=args.workers, pin_memory=(device == 'cuda'))
testset = torchvision.datasets.CIFAR10(root=args.data, train=False, download=True, transform=transform_test)
testloader = torch.utils.data.DataLoader(testset, batch_size=100, shuffle=False, num_workers=args.workers)
classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


# ---- model: a small VGG-style net (conv-BN-ReLU, max pools, one linear layer)
class SmallVGG(nn.Module):
    cfg = [16, 'M', 32, 'M', 64, 'M']

    def __init__(self, num_classes=10):
        super(SmallVGG, self).__init__()
        layers, in_channels = [], 3
        for v in self.cfg:
            if v == 'M':
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1, bias=False),
                           nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        out = self.features(x)                                 # (N, 64, 4, 4)
        out = F.adaptive_avg_pool2d(out, 1).view(out.size(0), -1)  # (N, 64)
        return self.classifier(out)


print('==> Building model..')
net = SmallVGG() if args.arch == 'vgg' else torchvision.models.resnet18(num_classes=10)
net = net.to(device)
if device == 'cuda' or args.data_parallel:
    net = torch.nn.DataParallel(net)

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.t_max)

if args.evaluate:
    checkpoint = torch.load('./checkpoint/ckpt.pth', map_location=device, weights_only=True)
    net.load_state_dict(checkpoint['net'])
    print('==> Evaluating the weights of epoch %d' % checkpoint['epoch'])
elif args.resume:
    print('==> Resuming from checkpoint..')
    assert os.path.isdir('checkpoint'), 'Error: no checkpoint directory found!'
    checkpoint = torch.load('./checkpoint/ckpt.pth', map_location=device)
    net.load_state_dict(checkpoint['net'])
    optimizer.load_state_dict(checkpoint['optimizer'])
    scheduler.load_state_dict(checkpoint['scheduler'])
    best_acc = checkpoint['acc']
    start_epoch = checkpoint['epoch'] + 1
    print('resumed: epoch %d, best acc %.3f' % (checkpoint['epoch'], best_acc))


def progress(current, total, msg):
    print('[%d/%d] %s' % (current + 1, total, msg))


def n_batches(loader):
    return min(len(loader), args.max_batches) if args.max_batches else len(loader)


def train(epoch):
    print('\nEpoch: %d | lr: %.6f' % (epoch, optimizer.param_groups[0]['lr']))
    net.train()
    train_loss = 0
    correct = 0
    total = 0
    for batch_idx, (inputs, targets) in enumerate(trainloader):
        if batch_idx >= n_batches(trainloader):
            break
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()

        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
        progress(batch_idx, n_batches(trainloader), 'Loss: %.3f | Acc: %.3f%% (%d/%d)'
                 % (train_loss / (batch_idx + 1), 100. * correct / total, correct, total))


def evaluate():
    """Mean test loss over the batches, correct predictions and images seen."""
    net.eval()
    test_loss = 0
    correct = 0
    total = 0
    with torch.no_grad():
        for batch_idx, (inputs, targets) in enumerate(testloader):
            if batch_idx >= n_batches(testloader):
                break
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            test_loss += loss.item()
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets).sum().item()
            progress(batch_idx, n_batches(testloader), 'Loss: %.3f | Acc: %.3f%% (%d/%d)'
                     % (test_loss / (batch_idx + 1), 100. * correct / total, correct, total))
    return test_loss / n_batches(testloader), correct, total


def test(epoch):
    global best_acc
    _, correct, total = evaluate()
    acc = 100. * correct / total
    if acc > best_acc:
        print('Saving.. acc %.3f epoch %d' % (acc, epoch))
        state = {
            'net': net.state_dict(),
            'acc': acc,
            'epoch': epoch,
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
        }
        if not os.path.isdir('checkpoint'):
            os.mkdir('checkpoint')
        torch.save(state, './checkpoint/ckpt.pth')
        best_acc = acc


if args.evaluate:
    loss, correct, total = evaluate()
    print('test loss %.6f | acc %.3f%% (%d/%d)' % (loss, 100. * correct / total, correct, total))
    raise SystemExit(0)

for epoch in range(start_epoch, start_epoch + args.epochs):
    train(epoch)
    scheduler.step()  # before test(), so that a checkpoint holds the next epoch's learning rate
    test(epoch)
