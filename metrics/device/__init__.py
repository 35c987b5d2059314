"""The machine and its vendor readers (NVML, npu-smi, RAPL), below the power windows of metrics.power."""
