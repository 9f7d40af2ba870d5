"""Sequential, ModuleList and ModuleDict containers."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .module import Module


class Sequential(Module):
    """Children called in order; built from modules or one OrderedDict of name -> module."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        n = len(self)
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool):
            raise TypeError(f"Sequential: index must be an int or a slice, got {idx!r}")
        if not -n <= idx < n:
            raise IndexError(f"Sequential: index {idx} out of range for {n} modules")
        return list(self._modules.values())[idx % n]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered under '0', '1', ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]


class ModuleDict(Module):
    """Modules under string keys, registered (parameters, state_dict) under those keys, in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be strings, got {key!r}")
        if "." in key or not key:
            raise ValueError(f"ModuleDict: key {key!r} must be non-empty and contain no '.' (state_dict names)")
        self.add_module(key, module)

    def __delitem__(self, key):
        if key not in self._modules:
            raise KeyError(key)
        self._forget(key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            del self[key]

    def update(self, modules):
        """Add (key, module) pairs from a mapping or an iterable of pairs, replacing existing keys."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = modules.items()
        else:
            try:
                pairs = [tuple(p) for p in modules]
            except TypeError:
                raise TypeError(f"ModuleDict.update: expected a mapping or an iterable of (key, module) pairs, "
                                f"got {type(modules).__name__}") from None
            for i, p in enumerate(pairs):
                if len(p) != 2:
                    raise ValueError(f"ModuleDict.update: element {i} has length {len(p)}, expected a "
                                     f"(key, module) pair")
        for key, module in pairs:
            self[key] = module
