"""PyTorch's nn.DataParallel and nn.parallel.DistributedDataParallel as wrappers (not minires.parallel,
which splits one op over CPU threads).

minires runs one device per process. DataParallel runs the wrapped module on its own device, whatever
device_ids says (several ids get a one-time warning): there is no scatter over GPUs. Gradients are
averaged across processes by minires.distributed (GradientSync, or `minires train --nproc N`), not by
DistributedDataParallel, which only wraps. Both keep PyTorch's shape: `.module` is the wrapped model,
state_dict keys start with "module.", and such a state_dict loads back into the wrapper.
"""
from __future__ import annotations

import warnings

from .module import Module


class DataParallel(Module):
    """Runs `module` in this process, on the device it is on; `.module` and "module."-prefixed state_dict keys."""

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: module must be an nn.Module, got {type(module).__name__}")
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim
        # Python's default warning filter shows each warning once per call site
        if device_ids is not None and len(list(device_ids)) > 1:
            warnings.warn(f"{type(self).__name__}: minires runs one device per process, so the module runs on "
                          f"its own device only, not over device_ids={list(device_ids)}; for several GPUs run "
                          f"one process each with minires.distributed (minires train --nproc N)", UserWarning,
                          stacklevel=2)

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


class DistributedDataParallel(DataParallel):
    """Runs `module` in this process; gradients are not averaged here: use minires.distributed.GradientSync."""

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers: bool = True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters: bool = False, **kwargs):
        super().__init__(module, None, output_device, dim)
        self.device_ids = device_ids
        warnings.warn("DistributedDataParallel: minires wraps the module without averaging gradients across "
                      "processes; make sync = minires.distributed.GradientSync(model.parameters(), world()) "
                      "and call sync() after each backward, or train with minires train --nproc N", UserWarning,
                      stacklevel=2)

    def no_sync(self):
        """A context that does nothing: this wrapper never synchronises."""
        return _Nothing()


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["DataParallel", "DistributedDataParallel"]
