"""Module: the base class of layers and models (parameters, buffers, children, state_dict)."""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..missing import message
from ..ops.convert import channels_last, parse_to
from ..tensor import Tensor
from .parameter import Parameter

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(ValueError, RuntimeError):
    """load_state_dict's error: PyTorch raises RuntimeError, minires raised ValueError; both catch it."""


# torch.nn.Module methods minires lacks: the AttributeError says so instead of "no attribute"
_TORCH_ONLY = {"register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
               "register_backward_hook", "register_full_backward_pre_hook", "register_state_dict_pre_hook",
               "register_load_state_dict_post_hook", "share_memory", "to_empty", "compile", "ipu", "xpu", "mtia",
               "bfloat16", "set_extra_state", "get_extra_state"}


# What minires/checkpoint.py's save_checkpoint stores beside the weights (a training checkpoint, e.g. a
# run's last.safetensors read by safetensors' own load_file): optimizer state arrays and other training state.
_TRAINING_PREFIXES = ("optimizer/state/", "arrays/")
_CHECKPOINT_DICT_KEYS = {"model", "optimizer", "scheduler", "epoch", "extra"}  # what load_checkpoint returns


def _wrong_file_hint(state_dict, unexpected) -> tuple:
    """(a hint, the unexpected keys still worth listing, whether the missing ones are) when state_dict is a
    training checkpoint's contents, not a model's state_dict; ("", unexpected, True) otherwise."""
    training = [k for k in unexpected if isinstance(k, str) and k.startswith(_TRAINING_PREFIXES)]
    if training:
        return (f"This is a training checkpoint: the weights plus {len(training)} arrays of optimizer and training "
                f"state (keys optimizer/state/..., as `minires train` writes last.safetensors). Load the run's "
                f"best.safetensors (weights only), or restore from this file with "
                f"minires.checkpoint.load_checkpoint(path, model) (or minires.load(path), which returns its weights).",
                [k for k in unexpected if k not in set(training)], True)
    entries = set(state_dict.keys()) & _CHECKPOINT_DICT_KEYS
    if "model" in entries and len(entries) > 1 and hasattr(state_dict["model"], "items"):
        return ("This is a checkpoint dict (keys " + ", ".join(f"'{k}'" for k in sorted(entries)) + "), as "
                "minires.checkpoint.load_checkpoint returns it: pass its weights, load_state_dict(ckpt['model']).",
                [], False)  # every weight is "missing": listing them would bury the hint
    return "", unexpected, True


def _prefixed_by_module(missing, unexpected) -> bool:
    """Whether the unexpected keys are the missing ones with a "module." prefix (a wrapped model's state_dict)."""
    return set(missing) <= {k[len("module."):] for k in unexpected if k.startswith("module.")}


class Module:
    """Base class of every layer: holds Parameters, buffers and sub-Modules in insertion order."""

    def __init__(self):
        # NOTE: object.__setattr__ because our __setattr__ needs these dicts to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        """The computation; subclasses override it and are called as module(x)."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration ----------------------------------------------------------------------
    def _check_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def register_parameter(self, name: str, param) -> None:
        """Add a Parameter (or None, a declared-but-absent parameter) under `name`."""
        self._check_init("parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add a non-trainable Tensor (or None) saved in state_dict unless persistent=False."""
        self._check_init("buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module) -> None:
        """Add a child Module (or None) under `name`."""
        self._check_init("modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    def _forget(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                                "(a Parameter or None is required)")
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' "
                                "(a Module or None is required)")
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (a Tensor or None is required)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        if name in _TORCH_ONLY:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}': "
                                 + message(f"minires.nn.Module.{name}"))
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if any(name in d for d in (self._parameters, self._buffers, self._modules)):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ---- traversal -------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = ""):
        """(qualified name, module) for this module and every descendant, each once, depth first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        """This module and every descendant, each once."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """(name, module) for the direct children."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        """The direct child modules."""
        for _, m in self.named_children():
            yield m

    def get_submodule(self, target: str = ""):
        """The descendant at a dotted path ("layer1.0.conv1"); "" is this module."""
        m = self
        for i, name in enumerate(target.split(".") if target else []):
            child = m._modules.get(name)
            if child is None:
                raise AttributeError(f"get_submodule: {type(m).__name__} at {'.'.join(target.split('.')[:i]) or 'the top'!r} "
                                     f"has no submodule {name!r} (target {target!r})")
            m = child
        return m

    def _named_members(self, registry, prefix, recurse):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, t in getattr(m, registry).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield mod_prefix + ("." if mod_prefix else "") + name, t

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(qualified name, Parameter) pairs, shared parameters once, in registration order."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        """Every Parameter (of descendants too unless recurse=False), each once."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        """(qualified name, buffer Tensor) pairs, persistent or not."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        """Every buffer Tensor (e.g. BatchNorm running statistics)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call fn on every child (recursively), then on self, as PyTorch does; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True):
        """Set training mode on this module and every descendant; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Switch to evaluation mode (BatchNorm uses running statistics); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """Turn gradient tracking of every parameter on or off (e.g. to freeze a backbone)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient (to None, or to zeros with set_to_none=False)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.array[...] = 0

    # ---- device / dtype --------------------------------------------------------------------
    def to(self, *args, **kwargs):
        """Move parameters and buffers in place to a device and/or cast floating ones to a dtype, as
        PyTorch's to(device, dtype), to(dtype), to(tensor) and to(memory_format=...); returns self."""
        device, dtype, _, fmt = parse_to("Module.to", args, kwargs)
        if dtype is not None and dtype.kind not in "fc":
            raise TypeError(f"Module.to: only floating-point dtypes are accepted, got {dtype}")

        def convert(arr):
            if dtype is not None and arr.dtype.kind == "f" and arr.dtype != dtype:
                arr = arr.astype(dtype)
            if device is not None:
                arr = backend.to_device(arr, device)
            if fmt is channels_last and arr.ndim == 4:  # (O, C, KH, KW) weights laid out channels-last
                xp = backend.get_array_module(arr)
                arr = xp.ascontiguousarray(arr.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            return arr

        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is None:
                    continue
                # NOTE: replace .array on the same Tensor object so optimizers keep valid references.
                t.array = convert(t.array)
                if t.grad is not None:
                    t.grad.array = convert(t.grad.array)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """Move to a CUDA device: the first by default, an index, or a device ("cuda:1")."""
        return self.to(backend.parse_device(0 if device is None else device))

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    # ---- state_dict ------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """OrderedDict of parameters and persistent buffers under torchvision-style dotted names.

        Values are Tensors sharing memory with the module (detached unless keep_vars=True).
        """
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def _state_targets(self):
        """name -> the live Tensor a state_dict entry of that name loads into."""
        return self.state_dict(keep_vars=True)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors or NumPy/CuPy arrays) into the existing tensors, keeping their dtype/device.

        With strict=True any missing or unexpected key raises; a shape mismatch always raises.
        Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping of names to tensors, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        mismatched, values = [], {}
        for k, t in targets.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v.array if isinstance(v, Tensor) else v
            if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
                arr = np.asarray(arr)
            if tuple(arr.shape) != tuple(t.shape):
                mismatched.append(f"size mismatch for {k}: copying a param with shape {tuple(arr.shape)} from "
                                  f"checkpoint, the shape in current model is {tuple(t.shape)}.")
            values[k] = arr
        problems = []
        hint, listed, list_missing = _wrong_file_hint(state_dict, unexpected) if strict else ("", [], True)
        if hint:
            problems.append(hint)
        if strict and missing and list_missing:
            problems.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if strict and listed:
            problems.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in listed) + ". ")
        problems.extend(mismatched)
        if strict and missing and unexpected and _prefixed_by_module(missing, unexpected):
            problems.append('The checkpoint was saved from nn.DataParallel or DistributedDataParallel (keys start with '
                            '"module."): load it into the wrapper, or strip that prefix from its keys.')
        if problems:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                                 + "\n\t".join(problems))
        for k, arr in values.items():
            t = targets[k]
            src = backend.to_device(arr, t.device)
            # NOTE: copy in place, so parameters stay the same objects (and arrays) optimizers hold.
            t.array[...] = src.astype(t.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ---- repr ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """Layer settings shown inside the parentheses of repr(); overridden by layers."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
