"""Power and energy: the reader interface and window (window.py), the NVIDIA, Ascend (npu-smi) and CPU
readers, the choice of collector for a device, and device listing."""
