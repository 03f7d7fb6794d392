"""An ONNX file whose float weights hold NaN or infinities is refused when it is opened, as a .wlz file is: it would
run and give a wrong answer (an all-NaN MLP measured 10% accuracy and an 11.8x compression)."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from wattless.deploy import OnnxModel, export_onnx
from wattless.errors import ArtifactError

from .conftest import make_mlp


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_onnx_weights_are_refused(tmp_path, value):
    path = export_onnx(make_mlp(), (20,), tmp_path / "m.onnx")
    OnnxModel(path)  # finite: opens
    model = onnx.load(path)
    first = model.graph.initializer[0]
    array = numpy_helper.to_array(first).copy()
    array.flat[3] = value
    first.CopyFrom(numpy_helper.from_array(array, first.name))
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(ArtifactError, match=f"weight {first.name!r} holds NaN or infinite values"):
        OnnxModel(tmp_path / "bad.onnx")
