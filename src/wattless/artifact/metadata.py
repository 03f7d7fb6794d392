"""The model metadata a `.wlz` file and the ``wattless`` entry of an exported ONNX file carry, and its schema.

A file's metadata is outside input: :func:`check_metadata` validates all of it once, where a file is read, so
that everything after can index it without checks. Known fields are typed strictly (no ``"7"`` for 7, no
``true`` for 1); fields this wattless does not know are kept as they are (a newer wattless may add some).
A bad field gives one line naming it, what it must be and (cut short) what it holds::

    model.wlz: metadata field model.num_outputs must be a positive integer (got -7); re-save the model with wattless
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wattless.artifact.format import MAX_HEADER_BYTES, FormatError, parse_json_object
from wattless.errors import ArtifactError

MAX_DIM = 2**31
MAX_DEPTH = 32
"""Nesting the metadata may have (real files have under 10 levels); deeper is refused before validation."""
SAVE_REMEDY = "re-save the model with wattless"
EXPORT_REMEDY = "re-export the model with wattless"

Positive = Annotated[int, Field(ge=1, le=MAX_DIM)]
NonNegative = Annotated[int, Field(ge=0)]
Shape = Annotated[list[Positive], Field(min_length=1, max_length=8)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Open(BaseModel):
    """Known fields strictly typed, unknown ones kept."""

    model_config = ConfigDict(strict=True, extra="allow")


class ModelSpec(_Open):
    name: Text = Field(description="a model name (a non-empty string)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="an object of the architecture's options")
    input_shape: Shape = Field(description="a list of 1 to 8 positive integers")
    num_outputs: Positive = Field(description="a positive integer")
    output: Literal["logits"] | None = Field(None, description='"logits" or null')
    unsaved: str = Field("", description="a string")


class Preprocessing(_Open):
    kind: str = Field("", description="a string")
    pixel_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(1.0, description="a positive number")
    mean: Finite | list[Finite] = Field(0.0, description="a number or a list of numbers")
    std: Finite | list[Finite] = Field(1.0, description="a number or a list of numbers")


class DatasetInfo(_Open):
    name: Text = Field(description="a data set name (a non-empty string)")
    task: Literal["classification", "regression"] = Field("classification", description='"classification" or '
                                                          '"regression"')
    input_shape: Shape = Field([1], description="a list of 1 to 8 positive integers")
    num_outputs: Positive = Field(1, description="a positive integer")
    classes: list[str | int | float] | None = Field(None, description="a list of class names, or null")
    sizes: dict[str, NonNegative] = Field(default_factory=dict, description="an object of non-negative integers")
    preprocessing: Preprocessing = Field(default_factory=Preprocessing, description="an object")


class RecipeStep(_Open):
    technique: Text = Field(description="a technique name (a non-empty string)")
    config: dict[str, Any] = Field(default_factory=dict, description="an object")


class TrainConfig(_Open):
    batch_size: Positive = Field(1, description="a positive integer")


class TrainSummary(_Open):
    config: TrainConfig = Field(default_factory=TrainConfig, description="an object")
    epochs_run: NonNegative = Field(0, description="a non-negative integer")


class Original(_Open):
    model: str = Field("", description="a model name")
    size_bytes_fp32: Positive = Field(1, description="a positive integer")


class Metadata(_Open):
    """The whole metadata: only ``model`` is required; a field that is present must fit, null only where allowed.
    The defaults document what a reader assumes (files are checked, never filled in)."""

    model: ModelSpec = Field(description="an object describing the architecture (name, kwargs, input_shape, "
                                         "num_outputs)")
    task: Literal["classification", "regression"] = Field("classification", description='"classification" or '
                                                          '"regression"')
    dataset: DatasetInfo = Field(None, description="an object describing the data set")  # type: ignore[assignment]
    seed: Annotated[int, Field(ge=-2**63, lt=2**64)] = Field(0, description="an integer from -2**63 to 2**64 - 1")
    recipe: list[RecipeStep] = Field(default_factory=list, description="a list of steps")
    train: TrainSummary = Field(default_factory=TrainSummary, description="an object")
    original: Original = Field(default_factory=Original, description="an object")
    packed: dict[str, Any] = Field(default_factory=dict, description="an object")
    structure: list[Any] = Field(default_factory=list, description="a list")
    size_bytes_fp32: Positive = Field(1, description="a positive integer")
    params: NonNegative = Field(0, description="a non-negative integer")
    nonzero_params: NonNegative = Field(0, description="a non-negative integer")
    wattless_version: str = Field("", description="a string")
    imported_from: str = Field("", description="a string")
    wrapped: bool = Field(False, description="true or false")


def check_metadata(meta: dict[str, Any], source: str, remedy: str = SAVE_REMEDY) -> dict[str, Any]:
    """``meta`` itself once it fits the schema, else ArtifactError naming the first bad field and ``remedy``."""
    if not isinstance(meta, dict):
        raise ArtifactError(f"{source}: its metadata is a JSON {type(meta).__name__}, not an object; {remedy}")
    if _depth_over(meta, MAX_DEPTH):
        raise ArtifactError(f"{source}: its metadata nests deeper than {MAX_DEPTH} levels; {remedy}")
    try:
        Metadata.model_validate(meta)
    except ValidationError as error:
        raise ArtifactError(f"{source}: {_describe(error.errors()[0], meta)}; {remedy}") from None
    return meta


def onnx_metadata(props: dict[str, str], source: str) -> dict[str, Any]:
    """The checked ``wattless`` metadata of an ONNX file's ``metadata_props``, or {} when it has none."""
    text = props.get("wattless")
    if text is None:
        return {}
    if len(text) > MAX_HEADER_BYTES:
        raise ArtifactError(f"{source}: its wattless metadata takes {len(text)} characters, over the "
                            f"{MAX_HEADER_BYTES} limit; {EXPORT_REMEDY}")
    try:
        meta = parse_json_object(text, "its wattless metadata")
    except FormatError as error:
        raise ArtifactError(f"{source}: {_short(str(error), 160)}; {EXPORT_REMEDY}") from None
    return check_metadata(meta, source, EXPORT_REMEDY)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects more than ``limit`` deep (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _describe(error: dict[str, Any], meta: dict[str, Any]) -> str:
    """``metadata field PATH must be WHAT (got VALUE)`` for pydantic's first error."""
    path, value, field = _field_at(error["loc"], meta)
    if error["type"] == "missing":
        return f"metadata field {path} is missing"
    requirement = field.description if field is not None and field.description else _short(error["msg"], 80)
    return f"metadata field {path} must be {requirement} (got {_shown(value)})"


def _field_at(loc: tuple[Any, ...], meta: Any) -> tuple[str, Any, Any]:
    """The deepest schema field along pydantic's ``loc``: its dotted path, the value there, its FieldInfo."""
    names: list[str] = []
    schema: Any = Metadata
    field, value = None, meta
    for part in loc:
        fields = getattr(schema, "model_fields", {}) if isinstance(schema, type) else {}
        if not isinstance(part, str) or part not in fields:
            break
        field = fields[part]
        names.append(part)
        value = value.get(part) if isinstance(value, dict) else None
        schema = next((kind for kind in (field.annotation, *getattr(field.annotation, "__args__", ()))
                       if isinstance(kind, type) and issubclass(kind, BaseModel)), None)
    return ".".join(names) or "(top level)", value, field


def _shown(value: Any) -> str:
    """A short view of a metadata value for an error line: scalars as JSON (cut to 80 characters), containers by
    their kind and length."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + _short(value, 78) + '"'
    return _short(str(value), 80)


def _short(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis when cut)."""
    text = " ".join(text[: limit + 1].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
