"""Power and energy over a window: the collector interface and window (window.py), the NVIDIA, Ascend (npu-smi) and
CPU collectors over the readers of metrics.device, the choice of collector for a device, and the devices listing."""
