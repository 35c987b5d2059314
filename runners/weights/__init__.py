"""Weights: the framework-neutral safetensors file, and a safe reader of PyTorch checkpoints."""
