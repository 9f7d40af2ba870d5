"""Checkpoints in safetensors: weights under torchvision names, everything else as arrays + JSON.

Layout of one file:
- model weights and buffers under their `state_dict()` names (`conv1.weight`, `fc.bias`, ...),
  so the weights load in any safetensors reader;
- optimizer state arrays under `optimizer/state/<param index>/<name>` (a `/` never occurs in a
  module path, so these cannot clash with weight names), and other training state (a recipe's
  weight average, say) under `arrays/<name>`;
- one JSON string in the header metadata (key "minires") holding the epoch, the optimizer's
  scalars and param groups, the scheduler state, the RNG state, `extra` (config, best accuracy,
  metrics history...) and a CRC-32 of all arrays, checked on load.
No pickle anywhere: loading a checkpoint cannot run code.

`save_weights` writes a weights-only file (the Trainer's best.safetensors): the state_dict under
torchvision's names and nothing else, so PyTorch's strict `load_state_dict` takes it into the
torchvision-named twin, plus JSON metadata (model, classes, epoch, accuracy, config).
`load_weights` reads the weights of any of these files, or of a plain safetensors file of weights
(PyTorch weights saved with the safetensors library, say).
"""
from __future__ import annotations

import json
import numbers
import os
import struct
import zlib
from collections import OrderedDict

import numpy as np

from . import backend, creation, serialization
from .io import atomic_write_bytes
from .tensor import Tensor

FORMAT = "minires.checkpoint/1"
WEIGHTS_FORMAT = "minires.weights/1"
_OPT_PREFIX = "optimizer/state/"
_ARRAYS_PREFIX = "arrays/"


class CheckpointError(serialization.UnpicklingError):
    """A checkpoint file is truncated, corrupted, or not a minires checkpoint (a ValueError)."""


def _safetensors_numpy():
    try:
        import safetensors.numpy as stn
    except ImportError:
        raise ImportError("checkpoints need the safetensors package: pip install 'minires[train]'") from None
    return stn


def _json_default(obj):
    """JSON for the NumPy scalars and small arrays that show up in optimizer/scheduler states."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"save_checkpoint: cannot store a {type(obj).__name__} in the JSON metadata")


def _crc(tensors: dict) -> int:
    """CRC-32 over names, dtypes, shapes and bytes of all arrays, in sorted name order."""
    crc = 0
    for name in sorted(tensors):
        a = tensors[name]
        crc = zlib.crc32(f"{name}|{a.dtype.str}|{a.shape}".encode(), crc)
        crc = zlib.crc32(a.tobytes(), crc)  # tobytes: C order whatever the layout
    return crc


def _to_array(value) -> np.ndarray:
    a = backend.to_numpy(getattr(value, "array", value))
    # NOTE: not np.ascontiguousarray, which turns a 0-d array (num_batches_tracked) into shape (1,)
    return a if a.flags.c_contiguous else np.array(a, order="C")


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch: int = 0, extra=None,
                    rng_state=None, arrays=None) -> None:
    """Atomically write a checkpoint of the model (and optimizer, scheduler, RNG, extra JSON, and named
    `arrays` of other training state) to path."""
    stn = _safetensors_numpy()
    tensors = OrderedDict((name, _to_array(v)) for name, v in model.state_dict().items())
    for name in tensors:
        if "/" in name:
            raise ValueError(f"save_checkpoint: state_dict key {name!r} contains '/', reserved for optimizer state")
    opt_meta = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for idx, state in sd["state"].items():
            for key, value in state.items():
                if isinstance(value, (numbers.Number, np.generic)) or value is None:
                    scalars.setdefault(str(idx), {})[key] = value
                else:
                    tensors[f"{_OPT_PREFIX}{int(idx)}/{key}"] = _to_array(value)
        opt_meta = {"scalars": scalars, "param_groups": sd["param_groups"]}
    for name, value in (arrays or {}).items():
        tensors[_ARRAYS_PREFIX + name] = _to_array(value)
    if rng_state is None:
        rng_state = creation.get_rng_state()
    meta = {
        "format": FORMAT,
        "model_keys": [k for k in tensors if not k.startswith((_OPT_PREFIX, _ARRAYS_PREFIX))],
        "epoch": int(epoch),
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_state": rng_state,
        "extra": extra or {},
        "crc32": _crc(tensors),
    }
    text = json.dumps(meta, default=_json_default)
    atomic_write_bytes(path, stn.save(dict(tensors), metadata={"format": "np", "minires": text}))


def save_weights(path, model, epoch: int = 0, extra=None) -> None:
    """Atomically write model's state_dict alone (strictly loadable by PyTorch) with JSON metadata."""
    stn = _safetensors_numpy()
    tensors = OrderedDict((name, _to_array(v)) for name, v in model.state_dict().items())
    meta = {"format": WEIGHTS_FORMAT, "model_keys": list(tensors), "epoch": int(epoch), "extra": extra or {},
            "crc32": _crc(tensors)}
    text = json.dumps(meta, default=_json_default)
    atomic_write_bytes(path, stn.save(dict(tensors), metadata={"format": "pt", "minires": text}))


def _read_file(path):
    """(header, blob, minires metadata or None) of a safetensors file, damage named with the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        blob = f.read()
    header = _read_header(path, blob)
    try:
        meta = json.loads(header.get("__metadata__", {})["minires"])
    except (KeyError, TypeError, json.JSONDecodeError, RecursionError):
        meta = None
    return header, blob, meta


def _load_arrays(path, blob, meta) -> dict:
    stn = _safetensors_numpy()
    try:
        tensors = stn.load(blob)
    except Exception as exc:  # safetensors raises its own error type
        raise CheckpointError(f"checkpoint {path!r} is corrupted ({exc})") from None
    if meta is not None:
        keys = meta.get("model_keys")
        needed = ("epoch", "optimizer", "scheduler", "rng_state", "extra") if meta.get("format") == FORMAT else ()
        if (not isinstance(meta.get("crc32"), int) or not isinstance(keys, list)
                or not all(isinstance(k, str) and k in tensors for k in keys) or not all(k in meta for k in needed)):
            raise CheckpointError(f"checkpoint {path!r} has corrupted minires metadata (no checksum, weight names "
                                  f"that are not among its arrays, or missing fields)")
        if _crc(tensors) != meta["crc32"]:
            raise CheckpointError(f"checkpoint {path!r} is corrupted: array checksum mismatch")
    return tensors


def load_weights(path) -> tuple:
    """(weights OrderedDict name -> ndarray, minires metadata or None) of a checkpoint, a weights-only
    file, or a plain safetensors file of weights."""
    path = os.fspath(path)
    header, blob, meta = _read_file(path)
    if meta is not None and meta.get("format") not in (FORMAT, WEIGHTS_FORMAT):
        raise CheckpointError(f"checkpoint {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = _load_arrays(path, blob, meta)
    if meta is not None:
        return OrderedDict((k, tensors[k]) for k in meta["model_keys"]), meta
    order = sorted((info["data_offsets"][0], k) for k, info in header.items() if k != "__metadata__")
    return OrderedDict((k, tensors[k]) for _, k in order), None


def _kind_of(blob: bytes):
    """What a file that is not safetensors is, from its first bytes (None when it cannot be told)."""
    head = bytes(blob[:200])
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (PyTorch's torch.save format or a NumPy .npz; minires.load reads PyTorch's)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head[2:3] != b"\x00":
        # protocol 2-5 and a first opcode; a safetensors length of 0x0280 (say) has a zero third byte
        return "a pickle (minires never unpickles a checkpoint; minires.load reads PyTorch's own .pt files)"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head[:1] == b"\x08" and 3 <= head[1] <= 12 and head[2:3] in (b"\x12", b"\x1a", b"\x3a", b"\x42"):
        # an ONNX ModelProto: ir_version (field 1, a small varint) then producer_name, graph or opset_import
        return "an ONNX model (minires exports them; it reads its own .safetensors checkpoints)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at byte 200 is still text
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if not text or not all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return None
    first = text.splitlines()[0][:40] if text.splitlines() else ""
    if text.lstrip().startswith(("{", "[")):
        return f"a JSON file (it starts with {first!r})"
    return f"{'a CSV file' if ',' in first else 'a text file'} (it starts with {first!r})"


def _read_header(path: str, blob: bytes) -> dict:
    """Parse and sanity-check the safetensors header, so damage gives a clear error naming the file."""
    (n,) = struct.unpack("<Q", blob[:8]) if len(blob) >= 8 else (None,)
    if n is None or n > len(blob) - 8 or blob[8:9] != b"{":  # not safetensors: say what it is, where that shows
        kind = _kind_of(blob)
        if kind is not None:
            raise CheckpointError(f"checkpoint {path!r} is {kind}, not a safetensors checkpoint: give a run's "
                                  f"best.safetensors or last.safetensors")
    if n is None:
        raise CheckpointError(f"checkpoint {path!r} is truncated ({len(blob)} bytes)")
    if n > len(blob) - 8:
        raise CheckpointError(f"checkpoint {path!r} is truncated or not a safetensors file "
                              f"(header claims {n} bytes, file has {len(blob)})")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupted header ({exc})") from None
    data_len = len(blob) - 8 - n
    try:
        ends = [int(info["data_offsets"][1]) for key, info in header.items() if key != "__metadata__"]
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupted header (an entry without data_offsets: "
                              f"{type(exc).__name__}: {exc})") from None
    if ends and max(ends) > data_len:
        raise CheckpointError(f"checkpoint {path!r} is truncated: arrays need {max(ends)} bytes of data, "
                              f"the file holds {data_len}")
    return header


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict: bool = True) -> dict:
    """Read a checkpoint; restore into model/optimizer/scheduler when given; return its contents.

    Returns a dict with "model" (OrderedDict name -> ndarray), "optimizer" and "scheduler"
    (state dicts or None), "epoch", "rng_state", "extra", "arrays" (name -> ndarray) and "path".
    """
    path = os.fspath(path)
    _safetensors_numpy()
    _, blob, meta = _read_file(path)
    if meta is None:
        raise CheckpointError(f"checkpoint {path!r} is a safetensors file without minires metadata "
                              f"(weights alone load with load_weights, or minires train --init-from)")
    if meta.get("format") not in (FORMAT, WEIGHTS_FORMAT):
        raise CheckpointError(f"checkpoint {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = _load_arrays(path, blob, meta)
    if meta["format"] == WEIGHTS_FORMAT:  # weights and metadata only: no training state to restore
        meta = dict(meta, optimizer=None, scheduler=None, rng_state=None)

    # safetensors sorts arrays by dtype and name; the metadata keeps the state_dict order
    weights = OrderedDict((k, tensors[k]) for k in meta["model_keys"])

    opt_sd = None
    if meta["optimizer"] is not None:
        state = {}
        try:
            for idx, scalars in meta["optimizer"]["scalars"].items():
                state.setdefault(int(idx), {}).update(scalars)
            for k in tensors:
                if k.startswith(_OPT_PREFIX):
                    idx, key = k[len(_OPT_PREFIX):].split("/", 1)
                    state.setdefault(int(idx), {})[key] = tensors[k]
            opt_sd = {"state": dict(sorted(state.items())), "param_groups": meta["optimizer"]["param_groups"]}
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path!r} has corrupted optimizer metadata ({type(exc).__name__}: "
                                  f"{exc})") from None

    if model is not None:
        model.load_state_dict(weights, strict=strict)
    if optimizer is not None:
        if opt_sd is None:
            raise CheckpointError(f"checkpoint {path!r} holds no optimizer state")
        optimizer.load_state_dict(opt_sd)
    if scheduler is not None:
        if meta["scheduler"] is None:
            raise CheckpointError(f"checkpoint {path!r} holds no scheduler state")
        scheduler.load_state_dict(meta["scheduler"])
    return {"model": weights, "optimizer": opt_sd, "scheduler": meta["scheduler"], "epoch": meta["epoch"],
            "rng_state": meta["rng_state"], "extra": meta["extra"], "path": path,
            "arrays": {k[len(_ARRAYS_PREFIX):]: v for k, v in tensors.items() if k.startswith(_ARRAYS_PREFIX)}}


# ---- torch.save / torch.load ------------------------------------------------------------------
_SAVE_KEY = "minires.save"  # safetensors metadata: {"kind": "tensor" | "dict", "keys": [names in order]}


def _is_safetensors_name(f) -> bool:
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "")
    return isinstance(name, (str, os.PathLike)) and os.fspath(name).lower().endswith(".safetensors")


def _safetensors_bytes(obj) -> bytes:
    """A Tensor or a flat dict of str -> Tensor as safetensors bytes (keys' order kept in the metadata)."""
    if isinstance(obj, Tensor):
        kind, tensors = "tensor", {"tensor": obj}
    elif isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        kind, tensors = "dict", obj
    else:
        raise TypeError(f"save: a .safetensors file holds a Tensor or a flat dict of str -> Tensor (a state_dict), "
                        f"got {type(obj).__name__}; save anything else under a .pt name (PyTorch's format)")
    stn = _safetensors_numpy()
    arrays = {k: _to_array(v) for k, v in tensors.items()}
    meta = {"format": "pt", _SAVE_KEY: json.dumps({"kind": kind, "keys": list(tensors)})}
    try:
        return stn.save(arrays, metadata=meta)
    except Exception as exc:  # safetensors raises its own error type, e.g. for complex dtypes
        raise TypeError(f"save: safetensors cannot store these arrays ({exc})") from None


def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True) -> None:
    """Write obj to f (a path or a binary file): PyTorch's zip format (torch.load reads it), or safetensors
    under a .safetensors name; paths are written atomically. Nothing but data is written: Tensors, NumPy
    arrays, dicts, OrderedDicts, lists, tuples, str, bytes, numbers, bool and None."""
    if not _use_new_zipfile_serialization:
        raise ValueError("save: minires writes PyTorch's zip format only (the legacy format is read, not written)")
    blob = _safetensors_bytes(obj) if _is_safetensors_name(f) else serialization.save_torch(obj)
    if hasattr(f, "write"):
        f.write(blob)
    elif isinstance(f, (str, os.PathLike)):
        atomic_write_bytes(f, blob)
    else:
        raise TypeError(f"save: f must be a path or a binary file object, got {type(f).__name__}")


def _load_safetensors(data: bytes, source: str, map_location):
    """What save() wrote under a .safetensors name; a Trainer checkpoint gives its weights; any other
    safetensors file a dict of its tensors."""
    stn = _safetensors_numpy()
    header = _read_header(source, data)
    meta = header.get("__metadata__") or {}
    try:
        minires_meta = json.loads(meta["minires"]) if "minires" in meta else None
    except (TypeError, json.JSONDecodeError, RecursionError):
        minires_meta = None
    if isinstance(minires_meta, dict) and minires_meta.get("format") in (FORMAT, WEIGHTS_FORMAT):
        arrays = _load_arrays(source, data, minires_meta)  # a Trainer's checkpoint: its weights, CRC-checked
        keys, info = list(minires_meta["model_keys"]), {}
    else:
        try:
            arrays = stn.load(data)
            info = json.loads(meta.get(_SAVE_KEY, "{}"))
        except Exception as exc:  # safetensors' own error type, or damaged metadata
            raise CheckpointError(f"load: {source!r} is not a readable safetensors file ({exc})") from None
        keys = info.get("keys") if isinstance(info, dict) else None
        keys = keys if isinstance(keys, list) and sorted(keys) == sorted(arrays) else list(arrays)
    mapper = serialization.location_mapper(map_location)
    tensors = OrderedDict((k, Tensor(backend.to_device(arrays[k], mapper(arrays[k], "cpu")))) for k in keys)
    if isinstance(info, dict) and info.get("kind") == "tensor" and keys == ["tensor"]:
        return tensors["tensor"]
    return tensors


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Read what torch.save or minires.save wrote (PyTorch zip or legacy format, or safetensors), told by content.

    Tensors come back as minires Tensors on `map_location` (None: where they were saved; 'cpu', 'cuda',
    'cuda:N', a device, a dict of saved -> new location, or a callable(storage, location)). Unpickling is
    restricted to what torch.load(weights_only=True) admits (plus NumPy scalars), whatever weights_only
    says: minires never runs code from a file, so weights_only=False unlocks nothing. `mmap` and
    `pickle_module` are accepted and have no effect (files are read into memory); `encoding` is honoured.
    """
    encoding = pickle_load_args.pop("encoding", "utf-8")
    if pickle_load_args:
        raise TypeError(f"load: unexpected keyword arguments {sorted(pickle_load_args)}")
    data, source = serialization.read_source(f)
    if not data:
        raise CheckpointError(f"load: {source!r} is empty (0 bytes)")
    kind = serialization.detect(data, source)
    if kind == "safetensors":
        return _load_safetensors(bytes(data), source, map_location)  # safetensors takes bytes only
    if kind is None and _kind_of(data) is not None:
        raise CheckpointError(f"load: {source!r} is {_kind_of(data)}, not a PyTorch checkpoint or a safetensors file")
    if kind is None:
        raise CheckpointError(f"load: {source!r} is not a PyTorch checkpoint (zip or legacy format) and not a "
                              f"readable safetensors file (it starts with {bytes(data[:16])!r})")
    return serialization.load_torch(data, kind, f"load: {source!r}", map_location, encoding)


UnpicklingError = serialization.UnpicklingError

__all__ = ["save_checkpoint", "load_checkpoint", "save_weights", "load_weights", "save", "load", "CheckpointError",
           "UnpicklingError",
           "FORMAT", "WEIGHTS_FORMAT"]
