"""Measurement primitives: operation counts, latency, energy (estimated or metered), footprint and environment.

``measurement.record`` assembles them into one report record.
"""

from .energy import estimate_energy, load_energy_table, memory_energy_pj_per_bit, op_energy_pj
from .env import collect_env, cpu_model_name
from .footprint import Footprint, FootprintResult, GridIntensity, co2e_grams, grid_intensity
from .latency import onnx_session, summarize_times, time_interleaved, time_onnx, time_torch
from .meters import Meter, NvmlMeter, RaplMeter, detect_meter, measure_energy
from .onnx_ops import count_onnx_macs
from .ops import count_macs, count_params

__all__ = [
    "Footprint", "FootprintResult", "GridIntensity", "Meter", "NvmlMeter", "RaplMeter", "co2e_grams", "detect_meter",
    "grid_intensity", "measure_energy",
    "collect_env", "count_macs", "count_onnx_macs", "count_params", "cpu_model_name", "estimate_energy",
    "load_energy_table", "memory_energy_pj_per_bit", "onnx_session", "op_energy_pj", "summarize_times",
    "time_interleaved", "time_onnx", "time_torch",
]
