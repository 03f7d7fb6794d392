"""The model metadata schema (``wattless.artifact.metadata``), fuzzed: whatever JSON a field holds, loading a model
file either works or raises one one-line WattlessError."""

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wattless.artifact import write_artifact
from wattless.errors import WattlessError
from wattless.io import load, state_tensors

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False,
                    allow_infinity=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                      max_size=3), max_leaves=8)
FIELDS = ("model", "model.name", "model.kwargs", "model.kwargs.hidden", "model.input_shape", "model.num_outputs",
          "model.output", "dataset", "dataset.name", "dataset.classes", "dataset.preprocessing",
          "dataset.preprocessing.pixel_scale", "recipe", "seed", "task", "train", "train.config.batch_size",
          "original", "original.size_bytes_fp32", "packed", "structure", "wattless_version")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_any_json_in_a_field_loads_or_is_one_error(tmp_path_factory, trained_mlp, field, value):
    folder = tmp_path_factory.mktemp("fuzz")
    meta = copy.deepcopy(trained_mlp.meta)
    *parents, last = field.split(".")
    node = meta
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value
    write_artifact(folder / "forged.wlz", state_tensors(trained_mlp.module), meta)
    try:
        load(folder / "forged.wlz")
    except WattlessError as error:
        assert "\n" not in str(error) and len(str(error)) < 600, str(error)
