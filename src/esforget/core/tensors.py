"""Reading safetensors files tensor by tensor: where each parameter is stored, one tensor
through a memory map, and row ranges with plain file reads (`TensorFile`).

Shared by ES (θ₀ for ‖θ − θ₀‖ without a second model in memory) and the weight analysis."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open


def tensor_files(model_dir: str | Path) -> dict[str, Path]:
    """Parameter name → the safetensors file holding it (single file or sharded)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {model_dir}")
    index = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open has keys(), no __iter__)
                    index[name] = file
        except SafetensorError as err:  # e.g. a copy cut short: say which file
            raise ValueError(f"{file}: not a complete safetensors file ({err})") from None
    return index


def load_tensor(file: Path, name: str) -> torch.Tensor:
    """One tensor from a safetensors file, read through a memory map."""
    with safe_open(file, framework="pt") as handle:
        return handle.get_tensor(name)


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class TensorFile:
    """Row ranges of the tensors of one safetensors file, read with plain file reads.

    Why not `safetensors.safe_open`: it memory-maps the file, and every page read through the
    map stays resident while the file is open or any tensor read from it is alive, so
    streaming a model through it ends up holding the whole model in RSS. The format is
    simple enough (8-byte little-endian header length, a JSON header of dtype, shape and byte
    offsets, then the raw data) that reading a row range is a seek and a readinto.
    """

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 (read chunk by chunk until close())
        size = int.from_bytes(self.file.read(8), "little")
        self.header = json.loads(self.file.read(size))
        self.header.pop("__metadata__", None)
        self.data_start = 8 + size

    def shape(self, name: str) -> list[int]:
        return self.header[name]["shape"]

    def dtype(self, name: str) -> torch.dtype:
        return _DTYPES[self.header[name]["dtype"]]

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of the tensor's leading dimension (a 0-d tensor: all of it)."""
        info = self.header[name]
        dtype, shape = self.dtype(name), info["shape"]
        per_row = math.prod(shape[1:]) if shape else 1
        itemsize = torch.empty((), dtype=dtype).element_size()
        count = (stop - start) * per_row
        buffer = bytearray(count * itemsize)
        self.file.seek(self.data_start + info["data_offsets"][0] + start * per_row * itemsize)
        if self.file.readinto(buffer) != len(buffer):
            raise ValueError(f"{self.path}: {name} is truncated")
        out = torch.frombuffer(buffer, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        return out.reshape([stop - start, *shape[1:]] if shape else [])

    def close(self) -> None:
        self.file.close()
