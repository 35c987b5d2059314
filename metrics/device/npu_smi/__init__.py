"""Huawei Ascend's ``npu-smi``, read: one parser per output format (info.py: the ``npu-smi info`` table;
key_values.py: ``-t power|common``; watch.py: the ``info watch`` stream), stream.py (a running watch), runner.py
(:class:`~metrics.device.npu_smi.runner.NpuSmi`, the tool run without a shell) and values.py (NpuSmiError and the
values all of them print). Standard library only; tested on real outputs (tests/fixtures/npu-smi)."""
