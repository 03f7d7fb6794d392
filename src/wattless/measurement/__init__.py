"""Measurement primitives: operation counts, latency, energy estimate and environment.

``measurement.record`` assembles them into one report record.
"""

from .energy import estimate_energy, load_energy_table, memory_energy_pj_per_bit, op_energy_pj
from .env import collect_env, cpu_model_name
from .latency import onnx_session, summarize_times, time_interleaved, time_onnx, time_torch
from .onnx_ops import count_onnx_macs
from .ops import count_macs, count_params

__all__ = [
    "collect_env", "count_macs", "count_onnx_macs", "count_params", "cpu_model_name", "estimate_energy",
    "load_energy_table", "memory_energy_pj_per_bit", "onnx_session", "op_energy_pj", "summarize_times",
    "time_interleaved", "time_onnx", "time_torch",
]
