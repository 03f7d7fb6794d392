"""Sweep studies: a YAML grid of models x data sets x recipes x seeds, validated in full before any work.

```yaml
name: digits-small                 # default: the file name without .yaml
models: [mlp, {name: mlp, kwargs: {hidden: [64]}}]     # zoo names, {name, kwargs}, or pkg.mod:factory
datasets: [digits, {name: "csv:data.csv", target: y}]  # names, or {name, split_seed, target, task}
seeds: [0, 1, 2]                   # default [0]; the seed of training and of the techniques
train: {epochs: 10, lr: 0.003}     # TrainConfig fields (not seed)
baseline: true                     # default true: measure the trained fp32 model as recipe "baseline"
recipes:                           # a shipped recipe name, a recipe YAML path, or inline {name, steps}
  - deep-compression
  - {name: ptq4, steps: [{quantize.ptq: {bits: 4}}]}
measure: {batches: [1, 256], threads: 1, repeats: 50, engines: [torch, onnxruntime], energy_meter: none,
          simulate: [edge_tpu_like]}      # optional: accelerator designs simulated with ZigZag (extra hw)
data_dir: data                     # optional folder of the data set files (not part of the trial keys)
```

Each trial's key is the SHA-256 of the canonical JSON of everything that determines its result (study
name, model spec, data set and its options, full training config, recipe, seed, measurement options,
wattless version); its fp32 base model is keyed the same way without the study, recipe and measurement,
so every recipe (and every study) trained the same way shares one base model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._json import canonical_json
from .._version import __version__
from .._yaml import read_yaml
from ..errors import ConfigError, WattlessError
from ..recipe import Recipe, shipped_recipes
from ..train import TrainConfig

STUDY_KEYS = ("name", "description", "models", "datasets", "seeds", "train", "baseline", "recipes", "measure",
              "data_dir")
DATASET_OPTIONS = ("split_seed", "target", "task")
BASELINE = "baseline"


class MeasureOptions(BaseModel):
    """How every trial's result is measured (see ``wattless measure``). Part of the trial key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batches: list[Annotated[int, Field(ge=1, le=65536)]] = Field([1, 256], min_length=1)
    threads: int = Field(1, ge=1, le=256, strict=True)  # the bounds of measure --threads and --repeats
    repeats: int = Field(50, ge=1, le=100_000, strict=True)
    engines: list[Literal["torch", "onnxruntime", "int8", "native"]] = Field(["torch", "onnxruntime"], min_length=1)
    simulate: list[str] = Field([], description="accelerator designs each trial is simulated on (ZigZag, "
                                "extra hw): shipped names or HARDWARE.yaml[:MAPPING.yaml]")
    clock_mhz: float | None = Field(None, gt=0, description="the designs' clock, for latency in seconds")
    energy_meter: Literal["none", "auto", "rapl", "nvml"] = Field(
        "none", description="'none' (the labelled estimate) by default: parallel trials share the CPU package, "
        "so a RAPL reading would mix them")


def stable_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value, allow_nan=True).encode()).hexdigest()


@dataclass(frozen=True)
class Trial:
    """One cell of the grid, as plain data (it travels to worker processes and Ray tasks)."""

    study: str
    model: dict[str, Any]           # {"name", "kwargs"}
    dataset: dict[str, Any]         # {"name", "options"}
    train: dict[str, Any]           # every TrainConfig field but seed
    seed: int
    recipe_name: str
    recipe: dict[str, Any] | None   # Recipe.to_dict(); None for the baseline
    measure: dict[str, Any]
    data_dir: str | None = None
    trust_code: bool = False
    version: str = __version__

    def base_inputs(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "train": self.train, "seed": self.seed,
                "wattless": self.version}

    @property
    def base_key(self) -> str:
        """The hash of the fp32 base model's inputs."""
        return stable_hash(self.base_inputs())

    @property
    def key(self) -> str:
        """The hash of everything that determines this trial's result."""
        return stable_hash({**self.base_inputs(), "study": self.study, "recipe": self.recipe,
                            "measure": self.measure})

    @property
    def suffix(self) -> str:
        """The artifact's file type: ONNX for recipes ending in int8 deployment, else ``.wlz``."""
        return ".onnx" if self.recipe and Recipe.from_dict(self.recipe).int8 else ".wlz"

    @property
    def label(self) -> str:
        return f"{self.model['name']} {self.dataset['name']} {self.recipe_name} seed={self.seed}"

    def columns(self) -> dict[str, Any]:
        """The DB columns known before the trial runs."""
        return {"key": self.key, "study": self.study, "model": self.model["name"], "dataset": self.dataset["name"],
                "recipe_name": self.recipe_name, "recipe": self.recipe, "seed": self.seed}


@dataclass
class Study:
    """A validated study: every name resolved, every config checked, every model buildable on its data."""

    name: str
    models: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    seeds: list[int]
    train: dict[str, Any]
    recipes: list[tuple[str, dict[str, Any] | None]]
    measure: MeasureOptions = field(default_factory=MeasureOptions)
    description: str = ""
    data_dir: str | None = None
    trust_code: bool = False

    def trials(self) -> list[Trial]:
        """The grid in a stable order: model, data set, seed, recipe (baseline first)."""
        return [Trial(self.name, model, dataset, self.train, seed, recipe_name, recipe, self.measure.model_dump(),
                      self.data_dir, self.trust_code)
                for model in self.models for dataset in self.datasets for seed in self.seeds
                for recipe_name, recipe in self.recipes]


def load_study(path: str | Path, *, data_dir: str | None = None, trust_code: bool = False,
               check_data: bool = True) -> Study:
    """Read and validate a study YAML file (see the module docstring); any problem is one :class:`ConfigError`."""
    path = Path(path)
    data = read_yaml(path, "study")
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return study_from_dict(data, source=str(path), base_dir=path.parent, data_dir=data_dir, trust_code=trust_code,
                           check_data=check_data)


def study_from_dict(data: Any, *, source: str = "study", base_dir: str | Path = ".", data_dir: str | None = None,
                    trust_code: bool = False, check_data: bool = True) -> Study:
    """Validate a study given as plain data. ``check_data`` loads every data set and builds every model on
    it, so that bad names, options and shapes fail now and not in a worker."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a study is a mapping with models, datasets, recipes (see `wattless sweep "
                          "--help`)")
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown study keys {unknown}; use {', '.join(STUDY_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ConfigError(f"{source}: name must be a non-empty text without '/', got {name!r}")
    if data_dir is None and data.get("data_dir") is not None:
        data_dir = str(Path(base_dir) / str(data["data_dir"]))
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None  # workers may start elsewhere
    models = [_model(entry, f"{source}: models #{i}", trust_code) for i, entry in enumerate(_list(data, "models",
                                                                                                  source), 1)]
    datasets = [_dataset(entry, f"{source}: datasets #{i}") for i, entry in enumerate(_list(data, "datasets",
                                                                                            source), 1)]
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           and 0 <= s <= 2**32 - 1 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: seeds must be a non-empty list of distinct whole numbers from 0 to 2**32 - 1, "
                          f"got {str(seeds)[:200]}")
    study = Study(name=name.strip(), models=models, datasets=datasets, seeds=seeds, train=_train(data, source),
                  recipes=_recipes(data, source, Path(base_dir)), measure=_measure(data, source),
                  description=str(data.get("description", "")), data_dir=data_dir, trust_code=trust_code)
    keys = [trial.key for trial in study.trials()]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{source}: two entries of the grid are the same trial; remove the repeated model, data "
                          "set or recipe")
    if check_data:
        _check_models_fit_data(study, source)
    return study


def _list(data: dict, key: str, source: str) -> list:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty list")
    return value


def _model(entry: Any, where: str, trust_code: bool) -> dict[str, Any]:
    from ..models import is_import_path, list_models

    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or set(entry) - {"name", "kwargs"}:
        raise ConfigError(f"{where}: a model is a name or {{name, kwargs}}, got {entry!r}")
    kwargs = entry.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: kwargs of {entry['name']!r} must be a mapping, got {kwargs!r}")
    name = entry["name"]
    if is_import_path(name) and not trust_code:
        raise ConfigError(f"{where}: model {name!r} is your own code; pass --trust-code to import it")
    if not is_import_path(name) and name not in list_models():
        raise ConfigError(f"{where}: unknown model {name!r}; choose one of {', '.join(list_models())} "
                          "or package.module:factory")
    return {"name": name, "kwargs": kwargs}


def _dataset(entry: Any, where: str) -> dict[str, Any]:
    from ..data import list_datasets

    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where}: a data set is a name or {{name, split_seed, target, task}}, got {entry!r}")
    unknown = sorted(set(entry) - {"name", *DATASET_OPTIONS})
    if unknown:
        raise ConfigError(f"{where}: unknown data set options {unknown}; use {', '.join(DATASET_OPTIONS)}")
    name = entry["name"]
    if not name.startswith("csv:") and name not in list_datasets():
        raise ConfigError(f"{where}: unknown data set {name!r}; choose one of {', '.join(list_datasets())}, "
                          "or csv:PATH")
    options = {"split_seed": entry.get("split_seed", 0)}
    if not isinstance(options["split_seed"], int):
        raise ConfigError(f"{where}: split_seed must be a whole number, got {options['split_seed']!r}")
    options.update({k: entry[k] for k in ("target", "task") if entry.get(k) is not None})
    if options.get("task") not in (None, "classification", "regression"):
        raise ConfigError(f"{where}: task {options['task']!r} unknown; use classification or regression")
    return {"name": name, "options": options}


def _train(data: dict, source: str) -> dict[str, Any]:
    fields = data.get("train") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{source}: train must be a mapping of training options, got {fields!r}")
    if "seed" in fields:
        raise ConfigError(f"{source}: train.seed is not allowed; list the seeds under 'seeds'")
    try:
        config = TrainConfig(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        valid = ", ".join(f for f in TrainConfig.model_fields if f != "seed")
        raise ConfigError(f"{source}: train.{'.'.join(map(str, problem['loc']))}: {problem['msg']} "
                          f"(fields: {valid})") from None
    return config.model_dump(mode="json", exclude={"seed"})


def _measure(data: dict, source: str) -> MeasureOptions:
    fields = data.get("measure") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{source}: measure must be a mapping, got {fields!r}")
    try:
        options = MeasureOptions(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ConfigError(f"{source}: measure.{'.'.join(map(str, problem['loc']))}: {problem['msg']} "
                          f"(fields: {', '.join(MeasureOptions.model_fields)})") from None
    if options.simulate:  # every design checked (and ZigZag found) before any trial runs
        from ..measurement.simulate import architecture

        for design in options.simulate:
            architecture(design, clock_mhz=options.clock_mhz)
    return options


def _recipes(data: dict, source: str, base_dir: Path) -> list[tuple[str, dict[str, Any] | None]]:
    baseline = data.get("baseline", True)
    if not isinstance(baseline, bool):
        raise ConfigError(f"{source}: baseline must be true or false, got {baseline!r}")
    entries = data.get("recipes", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: recipes must be a list of recipe names or {{name, steps}}")
    recipes: list[tuple[str, dict[str, Any] | None]] = [(BASELINE, None)] if baseline else []
    for position, entry in enumerate(entries, start=1):
        where = f"{source}: recipes #{position}"
        if entry == BASELINE:
            raise ConfigError(f"{where}: the baseline is measured by default (baseline: true); remove it here")
        try:
            if isinstance(entry, str):
                recipe = _named_recipe(entry, base_dir)
                recipe.name = recipe.name or Path(entry).stem
            elif isinstance(entry, dict):
                recipe = Recipe.from_dict(entry, source=where)
                recipe.name = recipe.name or f"recipe-{position}"
            else:
                raise ConfigError(f"{where}: a recipe is a shipped name, a YAML path or {{name, steps}}")
        except WattlessError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(source) else f"{where}: {message}") from None
        if recipe.name == BASELINE:
            raise ConfigError(f"{where}: the name 'baseline' is kept for the trained model without a recipe")
        recipes.append((recipe.name, recipe.to_dict()))
    names = [name for name, _ in recipes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{source}: recipe names must differ; repeated: {', '.join(repeated)}")
    if not recipes:
        raise ConfigError(f"{source}: nothing to run: no recipes and baseline: false")
    return recipes


def _named_recipe(text: str, base_dir: Path) -> Recipe:
    if text in shipped_recipes():
        return Recipe.load(text)
    path = Path(text) if Path(text).is_absolute() else base_dir / text
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Recipe.from_yaml(path)
    raise ConfigError(f"recipe {text!r} is neither a shipped recipe ({', '.join(shipped_recipes())}) nor a file")


def _check_models_fit_data(study: Study, source: str) -> None:
    """Load each data set and build each model for it, running one zero sample: bad options fail now."""
    from ..data import load_dataset
    from ..models import build_model, check_input_shape
    from ..models import spec_for as model_spec
    from ..trainer import check_trainable_size

    for dataset in study.datasets:
        try:
            data = load_dataset(dataset["name"], data_dir=study.data_dir, **dataset["options"])
        except WattlessError as exc:
            raise ConfigError(f"{source}: data set {dataset['name']!r}: {exc}") from None
        for model in study.models:
            try:
                spec = model_spec(model["name"], data, model["kwargs"])
                check_trainable_size(spec, trust_code=study.trust_code)  # on the meta device: no memory
                check_input_shape(build_model(spec, trust_code=study.trust_code), data.input_shape)
            except WattlessError as exc:
                raise ConfigError(f"{source}: model {model['name']!r} on {dataset['name']!r}: {exc}") from None
