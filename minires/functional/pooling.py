"""PLACEHOLDER: being written (core engine, issue 2)."""

def max_pool2d(x, kernel_size, stride=None, padding=0):
    raise NotImplementedError


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    raise NotImplementedError


def adaptive_avg_pool2d(x, output_size):
    raise NotImplementedError


