"""Exported-graph engines (ONNX Runtime, MindSpore MindIR) as forecast runners, above the frameworks' backends."""
