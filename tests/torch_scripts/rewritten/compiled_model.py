"""A script of the PyTorch 2 era: the model goes through torch.compile, which minires does not have.
With --guarded it asks first (`hasattr(torch, 'compile')`), as scripts that also run on old PyTorch do,
and runs the model as it is where compile is missing.

Run: python compiled_model.py [--guarded]
"""
import argparse

import minires as torch
import minires.nn as nn
parser = argparse.ArgumentParser(description="a forward pass through a compiled model")
parser.add_argument("--guarded", action="store_true", help="compile only where torch.compile exists")
args = parser.parse_args()

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(8, 10))
if not args.guarded:
    model = torch.compile(model)
elif hasattr(torch, 'compile'):
    model = torch.compile(model)
else:
    print('torch.compile is not available: running the model uncompiled')

with torch.no_grad():
    logits = model(torch.randn(4, 3, 32, 32))
print('logits:', tuple(logits.shape))
