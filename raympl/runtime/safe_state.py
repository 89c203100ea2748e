"""A run's Python state to bytes and back without pickle, so that reading a state runs no code from it.

Layout: MAGIC, the length of a JSON header (8 bytes, little-endian), the header, then one safetensors
buffer. The header is the state's tree: numbers, strings, lists, tuples, dicts (any keys), sets, and
objects of raympl's own classes (or a loaded plug-in's) written as their class name and attributes. Every
tensor, numpy array, bytes value and Arrow record batch is a numbered entry of the safetensors buffer;
random generators are their state (torch's as a byte tensor, numpy's as the bit generator's dict). An object
met twice is written once and referenced, so what shared an object before shares it after.

Reading builds only these: an object's class is looked up by name among raympl's modules and the modules of
plug-ins this process loaded, and is created without calling its __init__ (docs/security.md). Anything else
in a state (a function, an open file, an object of another library) is refused when it is written.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import struct
import sys
from typing import Any

import numpy as np
import pyarrow as pa
import safetensors.torch
import torch

from raympl import plugins
from raympl.errors import CheckpointError

MAGIC = b"RAYMPL-STATE-1\n"
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
NUMPY_SCALAR_KINDS = "biuf"  # bool, int, uint, float
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def dumps(obj: Any) -> bytes:
    """The state `obj` as bytes (tensors are copied to the CPU)."""
    encoder = _Encoder()
    header = json.dumps(encoder.node(obj), separators=(",", ":"), allow_nan=False).encode()
    tensors = safetensors.torch.save(encoder.tensors)
    return MAGIC + struct.pack("<Q", len(header)) + header + tensors


def loads(data: bytes, what: str = "state") -> Any:
    """A state written by dumps; CheckpointError naming `what` for anything else (a pickle included)."""
    if not data.startswith(MAGIC):
        raise CheckpointError(f"invalid {what}: not a raympl state file" + (
            " (a pickle written by an older raympl)" if is_pickle(data) else ""))
    start = len(MAGIC) + 8
    (length,) = struct.unpack("<Q", data[len(MAGIC):start])
    try:
        tree = json.loads(data[start:start + length])
        tensors = safetensors.torch.load(data[start + length:])
    except (ValueError, safetensors.SafetensorError) as error:
        raise CheckpointError(f"invalid {what}: damaged ({error})") from None
    return _Decoder(tensors, what).value(tree)


def is_pickle(data: bytes) -> bool:
    """torch.save's zip archive or a bare pickle (protocol 2 and up): what raympl wrote before this format."""
    return data.startswith(b"PK\x03\x04") or data[:1] == b"\x80"


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class _Encoder:
    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.seen: dict[int, tuple[dict, Any]] = {}  # id -> (its node, the object, kept alive so ids stay unique)
        self.storages: set[int] = set()
        self.refs = 0

    def node(self, obj: Any) -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"$f": repr(obj)}
        if id(obj) in self.seen:
            return self._reference(id(obj))
        node = self._new_node(obj, kind)
        self.seen[id(obj)] = (node, obj)
        self._fill(node, obj, kind)
        return node

    def _reference(self, key: int) -> dict:
        node = self.seen[key][0]
        if "#" not in node:
            node["#"] = self.refs
            self.refs += 1
        return {"$r": node["#"]}

    def _new_node(self, obj: Any, kind: type) -> dict:
        """The node of obj, its children left to _fill (containers are registered before their items, so that a
        container that holds itself is a reference, not endless)."""
        if kind is list:
            return {"$l": []}
        if kind is dict:
            return {"$d": []}
        if kind is tuple:
            return {"$t": []}
        if kind in (set, frozenset):
            return {"$set" if kind is set else "$fset": []}
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj)
        if kind is np.ndarray:
            return {"$N": self._add(_from_numpy(obj))}
        if kind is bytes:
            return {"$B": self._add(_byte_tensor(obj))}
        if kind is pa.RecordBatch:
            return {"$A": self._add(_byte_tensor(_ipc_bytes(obj)))}
        if isinstance(obj, np.generic) and obj.dtype.kind in NUMPY_SCALAR_KINDS:
            return {"$n": obj.dtype.str, "v": self.node(obj.item())}
        if kind is torch.Generator:
            return {"$G": self._add(obj.get_state()), "device": str(obj.device)}
        if kind is np.random.Generator:
            return {"$R": type(obj.bit_generator).__name__, "v": self.node(obj.bit_generator.state)}
        if isinstance(obj, torch.dtype):
            return {"$dtype": str(obj).removeprefix("torch.")}
        if kind is torch.device:
            return {"$device": str(obj)}
        if _is_named_tuple(kind):
            return {"$nt": class_name(kind), "v": []}
        if hasattr(obj, "__dict__") and not isinstance(obj, type) and _storable_module(kind.__module__):
            return {"$o": class_name(kind), "v": {}}
        raise TypeError(f"a state holds a {class_name(kind)}, which raympl does not store (it keeps tensors, "
                        "arrays, numbers, strings, lists, dicts and objects of raympl's or a plug-in's classes; "
                        "docs/extending.md)")

    def _fill(self, node: dict, obj: Any, kind: type) -> None:
        if "$l" in node or "$t" in node or "$nt" in node:
            node["$l" if "$l" in node else "$t" if "$t" in node else "v"].extend(self.node(v) for v in obj)
        elif "$d" in node:
            node["$d"].extend([self.node(k), self.node(v)] for k, v in obj.items())
        elif "$set" in node or "$fset" in node:
            node["$set" if kind is set else "$fset"].extend(self.node(v) for v in obj)
        elif "$o" in node:
            node["v"].update((name, self.node(value)) for name, value in vars(obj).items())

    def _tensor(self, tensor: torch.Tensor) -> dict:
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise TypeError(f"a state holds a {tensor.layout} tensor, which raympl does not store")
        t = tensor.detach().cpu()
        storage = t.untyped_storage()
        # safetensors keeps one tensor per buffer: a view of a larger tensor, or a second tensor over the same
        # memory, is copied alone
        if not t.is_contiguous() or storage.nbytes() != t.nbytes or (t.numel() and storage.data_ptr() in self.storages):
            t = t.clone(memory_format=torch.contiguous_format)
        if t.numel():
            self.storages.add(t.untyped_storage().data_ptr())
        node = {"$T": self._add(t)}
        if tensor.requires_grad:
            node["grad"] = True
        return node

    def _add(self, tensor: torch.Tensor) -> str:
        key = str(len(self.tensors))
        self.tensors[key] = tensor
        return key


def _is_named_tuple(kind: type) -> bool:
    return issubclass(kind, tuple) and hasattr(kind, "_fields")


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.dtype.kind not in "biufc":
        raise TypeError(f"a state holds a numpy array of dtype {array.dtype}, which raympl does not store")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def _ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _storable_module(module: str) -> bool:
    """raympl's own modules and those of the plug-ins this process loaded (and their packages' modules)."""
    top = module.partition(".")[0]
    return top == "raympl" or top in {name.partition(".")[0] for name in plugins.loaded_modules()}


class _Decoder:
    def __init__(self, tensors: dict[str, torch.Tensor], what: str):
        self.tensors, self.what = tensors, what
        self.refs: dict[int, Any] = {}

    def bad(self, detail: str) -> CheckpointError:
        return CheckpointError(f"invalid {self.what}: {detail}")

    def value(self, node: Any) -> Any:
        if not isinstance(node, dict):
            if isinstance(node, list):
                raise self.bad("damaged (a bare list in its tree)")
            return node
        if "$r" in node:
            if node["$r"] not in self.refs:
                raise self.bad(f"damaged (reference {node['$r']!r} before its object)")
            return self.refs[node["$r"]]
        (tag, payload), = ((k, v) for k, v in node.items() if k.startswith("$") and k != "$r")
        builder = getattr(self, "_" + tag[1:], None)
        if builder is None:
            raise self.bad(f"unknown entry {tag!r}")
        return builder(payload, node)

    def _register(self, node: dict, obj: Any) -> Any:
        if "#" in node:
            self.refs[node["#"]] = obj
        return obj

    def _f(self, text: str, node: dict) -> float:
        if text not in ("nan", "inf", "-inf"):
            raise self.bad(f"damaged (float {text!r})")
        return float(text)

    def _l(self, items: list, node: dict) -> list:
        out = self._register(node, [])
        out.extend(self.value(v) for v in items)
        return out

    def _d(self, items: list, node: dict) -> dict:
        out = self._register(node, {})
        for key, value in items:
            out[self.value(key)] = self.value(value)
        return out

    def _t(self, items: list, node: dict) -> tuple:
        return self._register(node, tuple(self.value(v) for v in items))

    def _set(self, items: list, node: dict) -> set:
        return self._register(node, {self.value(v) for v in items})

    def _fset(self, items: list, node: dict) -> frozenset:
        return self._register(node, frozenset(self.value(v) for v in items))

    def _tensor(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise self.bad(f"damaged (no tensor {key!r})")
        return self.tensors[key]

    def _T(self, key: str, node: dict) -> torch.Tensor:
        tensor = self._tensor(key)
        return self._register(node, tensor.requires_grad_() if node.get("grad") else tensor)

    def _N(self, key: str, node: dict) -> np.ndarray:
        return self._register(node, self._tensor(key).numpy())

    def _B(self, key: str, node: dict) -> bytes:
        return self._register(node, self._tensor(key).numpy().tobytes())

    def _A(self, key: str, node: dict) -> pa.RecordBatch:
        return self._register(node, pa.ipc.open_stream(self._tensor(key).numpy().tobytes()).read_next_batch())

    def _n(self, dtype: str, node: dict) -> np.generic:
        kind = np.dtype(dtype) if re.fullmatch(r"[<>|=]?[biuf][0-9]+", dtype) else None
        if kind is None or kind.kind not in NUMPY_SCALAR_KINDS:
            raise self.bad(f"damaged (numpy scalar of dtype {dtype!r})")
        return kind.type(self.value(node["v"]))

    def _G(self, key: str, node: dict) -> torch.Generator:
        generator = torch.Generator(device=str(node["device"]))
        generator.set_state(self._tensor(key))
        return self._register(node, generator)

    def _R(self, name: str, node: dict) -> np.random.Generator:
        if name not in BIT_GENERATORS:
            raise self.bad(f"unknown bit generator {name!r}")
        bit_generator = getattr(np.random, name)()
        bit_generator.state = self.value(node["v"])
        return self._register(node, np.random.Generator(bit_generator))

    def _dtype(self, name: str, node: dict) -> torch.dtype:
        found = getattr(torch, str(name), None)
        if not isinstance(found, torch.dtype):
            raise self.bad(f"unknown dtype {name!r}")
        return found

    def _device(self, name: str, node: dict) -> torch.device:
        return torch.device(str(name))

    def _nt(self, name: str, node: dict) -> tuple:
        cls = self._class(name)
        if not _is_named_tuple(cls):
            raise self.bad(f"{name!r} is not a named tuple")
        return self._register(node, cls(*(self.value(v) for v in node["v"])))

    def _o(self, name: str, node: dict) -> Any:
        cls = self._class(name)
        if cls.__new__ is not object.__new__:
            raise self.bad(f"{name!r} is not a plain class")
        obj = self._register(node, object.__new__(cls))
        obj.__dict__.update((str(k), self.value(v)) for k, v in node["v"].items())
        return obj

    def _class(self, name: str) -> type:
        """A class of raympl's (imported on demand: raympl's code is trusted) or of a loaded plug-in."""
        module_name, _, qualname = str(name).partition(":")
        if not (_DOTTED.fullmatch(module_name) and _DOTTED.fullmatch(qualname) and _storable_module(module_name)):
            raise self.bad(f"the class {name!r} is neither raympl's nor a loaded plug-in's")
        if module_name.partition(".")[0] == "raympl":
            importlib.import_module(module_name)
        found: Any = sys.modules.get(module_name)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if not isinstance(found, type):
            raise self.bad(f"no class {name!r}")
        return found
