"""A CIFAR-10 classifier in the shape of PyTorch's beginner tutorial: torchvision data normalised to
[-1, 1], a DataLoader with two workers, a small conv net, SGD with momentum, the weights saved with
torch.save and read back, then the accuracy overall and per class.

Settings come from the environment so the same file runs a full tutorial or a smoke test:
  CIFAR_ROOT (./data)  EPOCHS (2)  BATCH_SIZE (4)  WORKERS (2)  PRINT_EVERY (2000)  MAX_BATCHES (0: all)
Run: python cifar_tutorial.py
"""
import os

import minires as torch
import minires.vision as torchvision
import minires.vision.transforms as transforms
import minires.nn as nn
import minires.nn.functional as F
import minires.optim as optim
ROOT = os.environ.get('CIFAR_ROOT', './data')
EPOCHS = int(os.environ.get('EPOCHS', '2'))
batch_size = int(os.environ.get('BATCH_SIZE', '4'))
WORKERS = int(os.environ.get('WORKERS', '2'))
PRINT_EVERY = int(os.environ.get('PRINT_EVERY', '2000'))
MAX_BATCHES = int(os.environ.get('MAX_BATCHES', '0'))
PATH = './cifar_net.pth'

torch.manual_seed(0)

# ---- 1. data: images in [0, 1] from ToTensor, then (x - 0.5) / 0.5 per channel
transform = transforms.Compose(
    [transforms.ToTensor(),
     transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

trainset = torchvision.datasets.CIFAR10(root=ROOT, train=True, download=True, transform=transform)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size, shuffle=True, num_workers=WORKERS)
testset = torchvision.datasets.CIFAR10(root=ROOT, train=False, download=True, transform=transform)
testloader = torch.utils.data.DataLoader(testset, batch_size=batch_size, shuffle=False, num_workers=WORKERS)

classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')

# a look at one batch: a grid image (undo the normalisation first) and its labels
dataiter = iter(trainloader)
images, labels = next(dataiter)
torchvision.utils.save_image(torchvision.utils.make_grid(images) / 2 + 0.5, 'train_batch.png')
print('batch labels:', ' '.join(f'{classes[labels[j]]:5s}' for j in range(batch_size)))


# ---- 2. a small conv net
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5)     # 32 -> 28, pooled to 14
        self.conv2 = nn.Conv2d(8, 16, 5)    # 14 -> 10, pooled to 5
        self.fc1 = nn.Linear(16 * 5 * 5, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)  # (N, 16 * 5 * 5): everything but the batch
        x = F.relu(self.fc1(x))
        return self.fc2(x)


net = Net()

# ---- 3. loss and optimizer
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

# ---- 4. train
for epoch in range(EPOCHS):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        if MAX_BATCHES and i >= MAX_BATCHES:
            break
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if i % PRINT_EVERY == PRINT_EVERY - 1:
            print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / PRINT_EVERY:.3f}')
            running_loss = 0.0
print('Finished Training')
torch.save(net.state_dict(), PATH)

# ---- 5. test, with the weights read back from the file
net = Net()
net.load_state_dict(torch.load(PATH, weights_only=True))

images, labels = next(iter(testloader))
outputs = net(images)
_, predicted = torch.max(outputs, 1)
print('GroundTruth:', ' '.join(f'{classes[labels[j]]:5s}' for j in range(batch_size)))
print('Predicted:  ', ' '.join(f'{classes[predicted[j]]:5s}' for j in range(batch_size)))

correct = 0
total = 0
correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}
with torch.no_grad():  # no gradients needed for testing
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predictions == labels).sum().item()
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1

print(f'Accuracy of the network on the {total} test images: {100 * correct // total} % ({correct}/{total})')
for classname, correct_count in correct_pred.items():
    n = total_pred[classname]
    accuracy = 100 * float(correct_count) / n if n else 0.0
    print(f'Accuracy for class: {classname:5s} is {accuracy:.1f} % ({correct_count}/{n})')
