"""The floating-point dtypes a setting may name, apart from `esforget.core.models` (which maps
them to torch's) so that checking a config does not import torch."""

DTYPE_NAMES = ("float32", "bfloat16", "float16")
