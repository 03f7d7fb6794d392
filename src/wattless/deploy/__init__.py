"""ONNX export (fp32, static int8 QDQ, dynamic int8) and CPU inference through ONNX Runtime."""

from .dynamic import quantize_dynamic_int8
from .export import CALIBRATION_SAMPLES, INT8_MODES, export_model
from .int8 import CALIBRATION_METHODS, cpu_lacks_vnni, quantize_int8
from .onnx import export_onnx
from .runtime import OnnxModel, read_onnx_metadata

__all__ = [
    "CALIBRATION_METHODS",
    "CALIBRATION_SAMPLES",
    "INT8_MODES",
    "export_model",
    "OnnxModel",
    "cpu_lacks_vnni",
    "export_onnx",
    "quantize_dynamic_int8",
    "quantize_int8",
    "read_onnx_metadata",
]
