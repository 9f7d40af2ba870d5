"""PLACEHOLDER: being written (core engine, issue 2)."""

def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    raise NotImplementedError


