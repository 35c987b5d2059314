"""npu-smi, read."""
