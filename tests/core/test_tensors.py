"""Reading stored tensors a few rows at a time, exactly as safetensors stored them."""

import pytest
import torch
from safetensors.torch import save_file

from esforget.core.tensors import TensorFile


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_empty_tensor_reads_as_an_empty_tensor_of_its_dtype(tmp_path, dtype):
    save_file({"empty": torch.zeros(0, 3, dtype=dtype), "w": torch.ones(2, 3, dtype=dtype)}, tmp_path / "m.safetensors")
    reader = TensorFile(tmp_path / "m.safetensors")
    empty = reader.rows("empty", 0, 0)
    none_of_w = reader.rows("w", 1, 1)
    reader.close()
    assert (empty.shape, empty.dtype) == ((0, 3), dtype) and (none_of_w.shape, none_of_w.dtype) == ((0, 3), dtype)
