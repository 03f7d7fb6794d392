"""``quantize.int8``: int8 deployment through ONNX Runtime, the last step of a recipe.

Static mode writes a QDQ model with per-channel int8 weights and uint8 activations whose ranges are calibrated
on training rows (``calibration``: minmax, entropy or percentile); dynamic mode quantizes MatMul/Gemm weights
ahead of time and activations per batch at run time (no calibration data: the mode for transformers). The
PyTorch model is not changed: int8 exists only in the ONNX file this technique deploys to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import model_validator
from torch import nn

from ...deploy import export_model
from ...errors import ConfigError
from .._registry import Applied, Context, Technique, TechniqueConfig, add_technique


class Int8Config(TechniqueConfig):
    mode: Literal["static", "dynamic"] = "static"
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"

    @model_validator(mode="after")
    def _dynamic_needs_no_calibration(self) -> Int8Config:
        if self.mode == "dynamic" and "calibration" in self.model_fields_set:
            raise ValueError("dynamic int8 needs no calibration; drop 'calibration' or use mode: static")
        return self

    def recipe_fields(self) -> dict[str, Any]:
        return {"mode": "dynamic"} if self.mode == "dynamic" else {"calibration": self.calibration}


class Int8Deployment(Technique):
    """Deploy as int8 ONNX through ONNX Runtime (static QDQ calibrated on training data, or dynamic)."""

    name = "quantize.int8"
    config_type = Int8Config
    summary = "Deploy as int8 ONNX through ONNX Runtime (static QDQ calibrated on training data, or dynamic)."
    deploys: ClassVar[bool] = True
    output_suffix: ClassVar[str | None] = ".onnx"
    claims = ("weight_bits", "size_bytes")

    def apply(self, model: nn.Module, cfg: TechniqueConfig, ctx: Context) -> Applied:
        raise ConfigError(f"{self.name} deploys to an ONNX file and does not change the PyTorch model; make it the "
                          "last step of a recipe written to OUT.onnx (wattless compress ... -o OUT.onnx)")

    def deploy(self, model: Any, cfg: Int8Config, ctx: Context, out: Path) -> Path:
        return export_model(model, out, int8=True, mode=cfg.mode, calibration=cfg.calibration, data=ctx.dataset)


add_technique(Int8Deployment())
