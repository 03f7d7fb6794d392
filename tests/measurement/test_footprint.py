"""The footprint of work: CPU-time estimate and metered energy, CO2e, grid intensity sources, and the CLI."""

from __future__ import annotations

import json
import sys
import types

import pytest

from wattless.errors import ConfigError
from wattless.measurement import footprint as fp
from wattless.measurement.footprint import (
    CPU_WATTS_ENV,
    DEFAULT_GRID_INTENSITY,
    GRID_INTENSITY_ENV,
    Footprint,
    GridIntensity,
    co2e_grams,
    cpu_watts_per_core,
    grid_intensity,
)
from wattless.measurement.meters import ENERGY_METER_ENV, Meter, NoMeter
from wattless.testing import run_cli


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in (CPU_WATTS_ENV, GRID_INTENSITY_ENV, ENERGY_METER_ENV):
        monkeypatch.delenv(name, raising=False)


def fake_times(monkeypatch, wall: list[float], cpu: list[float]) -> None:
    """Make the footprint see these wall-clock and CPU-time readings (s), in order."""
    monkeypatch.setattr(fp, "time", types.SimpleNamespace(perf_counter=iter(wall).__next__))
    monkeypatch.setattr(fp, "process_cpu_seconds", iter(cpu).__next__)


def test_cpu_time_estimate_by_hand(monkeypatch):
    fake_times(monkeypatch, wall=[100.0, 112.5], cpu=[10.0, 46.0])
    with Footprint(meter=NoMeter(), watts_per_core=10.0) as footprint:
        pass
    result = footprint.result
    assert (result.wall_s, result.cpu_s) == (12.5, 36.0)
    assert result.energy_j == 360.0 and result.energy_wh == pytest.approx(0.1)  # 36 s x 10 W = 360 J
    assert result.method == "estimate-cpu-time" and result.watts_per_core == 10.0
    assert result.grid_g_per_kwh == DEFAULT_GRID_INTENSITY == 475.0
    assert result.co2e_g == pytest.approx(0.0001 * 475)  # 360 J = 0.0001 kWh
    assert result.summary() == ("footprint: 12.5 s wall, 36.0 s CPU, 0.1 Wh (estimate-cpu-time, 10 W/core), "
                                "0.0475 g CO2e at 475 g/kWh")
    assert json.loads(json.dumps(result.as_dict()))["energy_wh"] == pytest.approx(0.1)


def test_real_work_costs_cpu_time_and_energy():
    with Footprint(meter=NoMeter(), watts_per_core=5.0, grid=GridIntensity(100.0, "test")) as footprint:
        sum(i * i for i in range(300_000))
    result = footprint.result
    assert result.cpu_s > 0 and result.wall_s > 0
    assert result.energy_j == pytest.approx(result.cpu_s * 5.0)
    assert result.co2e_g == pytest.approx(result.energy_j / 3.6e6 * 100.0)
    assert result.grid_source == "test"


def test_co2e_conversion():
    assert co2e_grams(3.6e6, 475.0) == pytest.approx(475.0)  # 1 kWh
    assert co2e_grams(3600.0, 56.0) == pytest.approx(0.056)  # 1 Wh


def test_watts_per_core_come_from_argument_environment_or_default(monkeypatch):
    assert cpu_watts_per_core() == 10.0
    monkeypatch.setenv(CPU_WATTS_ENV, "6.5")
    assert cpu_watts_per_core() == 6.5 and cpu_watts_per_core(3.0) == 3.0
    assert Footprint(meter=NoMeter()).watts_per_core == 6.5
    monkeypatch.setenv(CPU_WATTS_ENV, "lots")
    with pytest.raises(ConfigError, match=CPU_WATTS_ENV):
        cpu_watts_per_core()
    with pytest.raises(ConfigError, match="positive"):
        cpu_watts_per_core(0.0)


def test_grid_intensity_sources(monkeypatch):
    assert grid_intensity() == GridIntensity(475.0, "world average (IEA 2019)")
    assert grid_intensity(30.0) == GridIntensity(30.0, "--grid-intensity")
    monkeypatch.setenv(GRID_INTENSITY_ENV, "250")
    assert grid_intensity() == GridIntensity(250.0, f"${GRID_INTENSITY_ENV}")
    assert grid_intensity(30.0).g_per_kwh == 30.0  # the option wins over the environment
    with pytest.raises(ConfigError, match="not both"):
        grid_intensity(30.0, "FRA")
    with pytest.raises(ConfigError, match="0 g CO2e/kWh or more"):
        grid_intensity(-1.0)
    monkeypatch.setenv(GRID_INTENSITY_ENV, "high")
    with pytest.raises(ConfigError, match=GRID_INTENSITY_ENV):
        grid_intensity()


def fake_codecarbon(monkeypatch, mix: dict) -> None:
    package, module = types.ModuleType("codecarbon"), types.ModuleType("codecarbon.input")

    class DataSource:
        def get_global_energy_mix_data(self):
            return mix

    module.DataSource = DataSource
    package.input = module
    monkeypatch.setitem(sys.modules, "codecarbon", package)
    monkeypatch.setitem(sys.modules, "codecarbon.input", module)


def test_country_intensity_from_codecarbon_data(monkeypatch):
    fake_codecarbon(monkeypatch, {"FRA": {"carbon_intensity": 56.039, "year": 2023, "country_name": "France"}})
    assert grid_intensity(country="fra") == GridIntensity(56.039, "CodeCarbon FRA 2023")
    with pytest.raises(ConfigError, match="no carbon intensity.*ISO 3166-1 alpha-3"):
        grid_intensity(country="FR")


def test_country_without_codecarbon_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    with pytest.raises(ConfigError, match=r"pip install 'wattless\[carbon\]'"):
        grid_intensity(country="FRA")


def test_country_with_the_real_codecarbon():
    pytest.importorskip("codecarbon")
    france, poland = grid_intensity(country="FRA"), grid_intensity(country="POL")
    assert 0 < france.g_per_kwh < poland.g_per_kwh < 1500  # nuclear France, coal-heavy Poland
    assert france.source.startswith("CodeCarbon FRA")


class StepMeter(Meter):
    """Adds 2 J on every read."""

    name = "fake"

    def __init__(self):
        super().__init__()
        self.available, self.reason, self.reads = True, None, 0

    def _advance_j(self):
        self.reads += 1
        return 2.0


def test_a_meter_gives_measured_energy_and_is_polled(monkeypatch):
    meter = StepMeter()
    polled = []
    monkeypatch.setattr(fp.Footprint, "_poll", lambda self: polled.append(self.meter.read()))
    with Footprint(meter=meter, grid=GridIntensity(360.0, "test")) as footprint:
        pass
    result = footprint.result
    assert result.method == "fake" and result.watts_per_core is None
    assert result.energy_j == 4.0  # reads: start (2 J), the poll (4 J), the end (6 J)
    assert polled == [4.0]
    assert result.co2e_g == pytest.approx(4.0 / 3.6e6 * 360.0)
    assert "Wh (fake)," in result.summary()


def test_the_poller_reads_the_meter_during_long_work():
    import time

    meter = StepMeter()
    with Footprint(meter=meter, poll_s=0.005):
        time.sleep(0.05)
    assert meter.reads >= 4


# --- the command line ------------------------------------------------------------------------------------------

TRAIN = ("train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--model-arg", "hidden=[16]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("footprint")
    code, out, err = run_cli(*TRAIN, "-o", folder / "a.wlz", "--json", "--grid-intensity", "100")
    assert code == 0, err
    return folder, json.loads(out), err


def test_train_reports_its_footprint_in_json_and_on_stderr(trained):
    _, printed, err = trained
    footprint = printed["footprint"]
    assert footprint["method"] == "estimate-cpu-time" and footprint["grid_g_per_kwh"] == 100.0
    assert footprint["cpu_s"] > 0 and footprint["energy_j"] == pytest.approx(footprint["cpu_s"] * 10.0)
    lines = [line for line in err.splitlines() if line.startswith("footprint:")]
    assert len(lines) == 1 and "W/core" in lines[0] and "at 100 g/kWh" in lines[0]


def test_the_footprint_stays_out_of_the_model_file(trained):
    folder, _, _ = trained
    code, _, err = run_cli(*TRAIN, "-o", folder / "b.wlz", "--quiet", "--grid-intensity", "900")
    assert code == 0 and err == ""  # --quiet: no footprint line either
    assert (folder / "b.wlz").read_bytes() == (folder / "a.wlz").read_bytes()


def test_compress_reports_the_footprint_of_the_compression_only(trained, monkeypatch):
    import wattless.api

    folder, _, _ = trained
    events = []
    enter, leave = fp.Footprint.__enter__, fp.Footprint.__exit__
    monkeypatch.setattr(fp.Footprint, "__enter__", lambda self: events.append("start") or enter(self))
    monkeypatch.setattr(fp.Footprint, "__exit__", lambda self, *exc: events.append("stop") or leave(self, *exc))
    # the before/after measurements are not the point here, and must fall outside the footprint
    monkeypatch.setattr(wattless.api._compress, "_before_after",
                        lambda *args, **kwargs: events.append("measure") or ({}, {}))
    code, out, err = run_cli("compress", folder / "a.wlz", "--step", "prune.magnitude:sparsity=0.5,finetune_epochs=0",
                             "-o", folder / "c.wlz", "--json")
    assert code == 0, err
    assert events == ["start", "stop", "measure"]
    footprint = json.loads(out)["footprint"]
    assert footprint["method"] == "estimate-cpu-time" and footprint["grid_g_per_kwh"] == 475.0
    assert footprint["wall_s"] > 0 and footprint["co2e_g"] >= 0
    assert sum(line.startswith("footprint:") for line in err.splitlines()) == 1


def test_carbon_country_options_fail_before_any_work(trained, monkeypatch):
    folder, _, _ = trained
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    code, out, err = run_cli(*TRAIN, "-o", folder / "d.wlz", "--carbon-country", "FRA")
    assert (code, out) == (2, "") and "wattless[carbon]" in err and err.count("\n") == 1
    code, _, err = run_cli(*TRAIN, "-o", folder / "d.wlz", "--carbon-country", "FRA", "--grid-intensity", "5")
    assert code == 2 and "not both" in err
    assert not (folder / "d.wlz").exists()


def test_carbon_country_uses_codecarbons_figure(trained, monkeypatch):
    folder, _, _ = trained
    fake_codecarbon(monkeypatch, {"FRA": {"carbon_intensity": 56.0, "year": 2023}})
    code, out, err = run_cli(*TRAIN, "-o", folder / "e.wlz", "--json", "--carbon-country", "FRA")
    assert code == 0, err
    footprint = json.loads(out)["footprint"]
    assert (footprint["grid_g_per_kwh"], footprint["grid_source"]) == (56.0, "CodeCarbon FRA 2023")
