"""Shared by several stages: atomic files, output folder names, checkpoints, loading and saving
models, safetensors readers, intervals, code hashes and logs."""
