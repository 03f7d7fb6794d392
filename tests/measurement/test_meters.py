"""Energy meters on fake powercap trees and a fake NVML, and the idle-subtracted measurement arithmetic."""

from __future__ import annotations

import builtins
import os
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from wattless.errors import ConfigError
from wattless.measurement import meters
from wattless.measurement.engines import TorchRunner
from wattless.measurement.meters import (
    ENERGY_METER_ENV,
    Meter,
    NoMeter,
    NvmlMeter,
    RaplMeter,
    detect_meter,
    measure_energy,
    measure_runner_energy,
    wrapped_delta,
)

MAX_RANGE_UJ = 262143328850


@pytest.fixture(autouse=True)
def meter_detection_on(monkeypatch):
    """These tests detect meters in fake sysfs trees and fake NVML modules: no forced-off meter."""
    monkeypatch.delenv(ENERGY_METER_ENV, raising=False)


def zone(folder: Path, name: str, energy_uj: int, max_range_uj: int = MAX_RANGE_UJ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return folder


def set_energy(folder: Path, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path) -> dict[str, Path]:
    """Two sockets, the first with core and dram subzones (the dram one also listed beside it, as sysfs does),
    plus zones that must not be counted: psys, the MMIO duplicate of package 0, and the control-type folder."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type: no name, no energy
    zones = {
        "package-0": zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "core": zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000),
        "dram": zone(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 2_000_000),
        "package-1": zone(root / "intel-rapl:1", "package-1", 3_000_000),
        "psys": zone(root / "intel-rapl:2", "psys", 9_000_000),
        "mmio": zone(root / "intel-rapl-mmio:0", "package-0", 7_000_000),
    }
    os.symlink(zones["dram"], root / "intel-rapl:0:1")
    return {"root": root, **zones}


def test_rapl_finds_packages_and_dram_and_nothing_else(powercap):
    meter = RaplMeter(powercap["root"])
    assert meter.available and meter.reason is None
    assert meter.domains == ["package-0", "package-0/dram", "package-1"]
    assert (meter.name, meter.device) == ("rapl", "cpu")
    assert not RaplMeter(powercap["root"], include_dram=False).domains.count("package-0/dram")


def test_rapl_read_sums_the_domains_cumulatively_in_joules(powercap):
    meter = RaplMeter(powercap["root"])
    assert meter.read() == 0.0
    set_energy(powercap["package-0"], 1_000_000 + 2_500_000)
    set_energy(powercap["dram"], 2_000_000 + 500_000)
    set_energy(powercap["package-1"], 3_000_000 + 1_000_000)
    set_energy(powercap["psys"], 99_000_000)  # not counted
    set_energy(powercap["core"], 99_000_000)  # inside package-0: not counted twice
    assert meter.read() == pytest.approx(4.0)
    set_energy(powercap["package-1"], 3_000_000 + 3_000_000)
    assert meter.read() == pytest.approx(6.0)  # cumulative since the meter was made


def test_rapl_counter_wrap_around_is_corrected(tmp_path):
    package = zone(tmp_path / "intel-rapl:0", "package-0", 990, max_range_uj=999)
    meter = RaplMeter(tmp_path)
    set_energy(package, 10)  # 990 -> 999 -> 0 -> 10: 9 + 1 + 10 µJ
    assert meter.read() == pytest.approx(20e-6)
    set_energy(package, 500)
    assert meter.read() == pytest.approx(510e-6)
    assert wrapped_delta(990, 10, 999) == 20 and wrapped_delta(5, 7, 999) == 2


def test_amd_rapl_zone_names_are_read_too(tmp_path):
    zone(tmp_path / "amd-rapl:0", "package-0", 1)
    assert RaplMeter(tmp_path).domains == ["package-0"]


def test_missing_tree_makes_the_meter_unavailable(tmp_path):
    meter = RaplMeter(tmp_path / "absent")
    assert not meter.available and "does not exist" in meter.reason
    with pytest.raises(ConfigError, match="unavailable"):
        meter.read()
    empty = RaplMeter(tmp_path)
    assert not empty.available and "no RAPL package zone" in empty.reason


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_counter_names_the_fix(powercap):
    (powercap["package-0"] / "energy_uj").chmod(0)
    meter = RaplMeter(powercap["root"])
    assert not meter.available
    assert "permission denied" in meter.reason and "chmod a+r" in meter.reason and "root" in meter.reason


def test_permission_error_names_the_fix(powercap, monkeypatch):
    real_open = builtins.open

    def guarded_open(path, *args, **kwargs):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    meter = RaplMeter(powercap["root"])
    assert not meter.available
    assert "energy_uj" in meter.reason and "PLATYPUS" in meter.reason
    assert f"sudo chmod a+r {powercap['root']}/intel-rapl:*/energy_uj" in meter.reason


def fake_pynvml(energies_mj: list[int], *, fail_init: bool = False, energy_supported: bool = True):
    """A stand-in for ``pynvml`` whose GPUs report ``energies_mj`` (a list the test may change)."""
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def init():
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    def energy(handle):
        if not energy_supported:
            raise NVMLError("Not Supported")
        return energies_mj[handle]

    module.NVMLError = NVMLError
    module.nvmlInit = init
    module.nvmlDeviceGetCount = lambda: len(energies_mj)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetTotalEnergyConsumption = energy
    return module


def test_nvml_reads_every_gpu_in_joules(monkeypatch):
    energies = [10_000, 20_000]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energies))
    meter = NvmlMeter()
    assert meter.available and (meter.name, meter.device) == ("nvml", "gpu")
    energies[0] += 1_500
    energies[1] += 500
    assert meter.read() == pytest.approx(2.0)
    assert detect_meter("nvml").name == "nvml"
    assert detect_meter(devices=("gpu",)).name == "nvml"
    assert detect_meter(root="/nonexistent", devices=("cpu",)).name == "none"  # CPU work: a GPU meter won't do


@pytest.mark.parametrize(("module", "reason"), [
    (None, "nvidia-ml-py is not installed"),
    (fake_pynvml([]), "no NVIDIA GPU"),
    (fake_pynvml([1], fail_init=True), "Driver Not Loaded"),
    (fake_pynvml([1], energy_supported=False), "Volta"),
])
def test_nvml_unavailable_says_why(monkeypatch, module, reason):
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = NvmlMeter()
    assert not meter.available and reason in meter.reason
    with pytest.raises(ConfigError, match=reason):
        detect_meter("nvml")


def test_detect_meter_kinds_and_environment(powercap, tmp_path, monkeypatch):
    monkeypatch.delenv(ENERGY_METER_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert isinstance(detect_meter(root=powercap["root"]), RaplMeter)
    assert isinstance(detect_meter("rapl", root=powercap["root"]), RaplMeter)
    assert detect_meter("none", root=powercap["root"]).name == "none"
    with pytest.raises(ConfigError, match="does not exist"):
        detect_meter("rapl", root=tmp_path / "absent")
    with pytest.raises(ConfigError, match="'joulemeter' unknown"):
        detect_meter("joulemeter")
    nothing = detect_meter(root=tmp_path / "absent", devices=("cpu", "gpu"))
    assert isinstance(nothing, NoMeter) and nothing.name == "none"
    assert "rapl:" in nothing.reason and "nvml:" in nothing.reason
    monkeypatch.setenv(ENERGY_METER_ENV, "none")
    assert detect_meter(root=powercap["root"]).name == "none"


@pytest.mark.skipif(Path("/sys/class/powercap").exists(), reason="this machine exposes powercap")
def test_this_machine_has_no_meter_and_records_stay_estimates(monkeypatch):
    monkeypatch.delenv(ENERGY_METER_ENV, raising=False)
    assert detect_meter().name == "none"
    estimate = {"value": 1e-6, "method": "estimate-45nm", "batch": 1}
    runner = TorchRunner(torch.nn.Linear(4, 2), (4,))
    assert measure_runner_energy(runner, estimate, batch=1) == {"energy_j_per_sample": estimate}


class FakeWorld(Meter):
    """A meter, a clock and a sleep sharing one simulated time: ``idle_w`` W always, plus ``work_j`` J and
    ``call_s`` s per call of ``run``."""

    name = "fake"
    step_j = 1e-3

    def __init__(self, idle_w: float, work_j: float, call_s: float):
        super().__init__()
        self.available, self.reason = True, None
        self.idle_w, self.work_j, self.call_s = idle_w, work_j, call_s
        self.now_s, self.energy_j, self._seen_j = 0.0, 0.0, 0.0

    def _advance_j(self) -> float:
        used, self._seen_j = self.energy_j - self._seen_j, self.energy_j
        return used

    def clock(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        self.energy_j += self.idle_w * seconds

    def run(self) -> None:
        self.sleep(self.call_s)
        self.energy_j += self.work_j


def test_idle_power_is_subtracted_exactly():
    world = FakeWorld(idle_w=4.0, work_j=1.5, call_s=0.25)
    result = measure_energy(world.run, meter=world, repeats=4, samples_per_run=3, windows=3, idle_seconds=2.0,
                            clock=world.clock, sleep=world.sleep)
    # a window: 4 calls = 1 s, 4 x (4 W x 0.25 s + 1.5 J) = 10 J, minus 4 W x 1 s idle = 6 J over 12 samples
    assert result["value"] == result["p25"] == result["p75"] == 0.5
    assert result["idle_w"] == 4.0 and result["window_s"] == 1.0
    assert (result["windows"], result["repeats"], result["method"]) == (3, 4, "fake")


def test_measure_energy_with_real_time_and_known_watts():
    calls = []

    class Wall(Meter):
        name, step_j = "wall", 1e-6

        def __init__(self):
            super().__init__()
            self.available, self.reason = True, None
            self.start, self.last = time.perf_counter(), 0.0

        def _advance_j(self):
            now = 3.0 * (time.perf_counter() - self.start) + 0.01 * len(calls)  # 3 W idle, 10 mJ per call
            used, self.last = now - self.last, now
            return used

    result = measure_energy(lambda: calls.append(1), meter=Wall(), repeats=50, samples_per_run=2,
                            idle_seconds=0.05)
    assert result["value"] == pytest.approx(0.005, rel=0.05)
    assert result["idle_w"] == pytest.approx(3.0, rel=0.05)


def test_results_below_the_counter_resolution_are_refused():
    world = FakeWorld(idle_w=4.0, work_j=0.01, call_s=0.001)  # 10 mJ of work: 10 steps of 1 mJ
    with pytest.raises(ConfigError, match="raise repeats"):
        measure_energy(world.run, meter=world, repeats=1, samples_per_run=1, idle_seconds=1.0,
                       clock=world.clock, sleep=world.sleep)
    quiet = FakeWorld(idle_w=0.01, work_j=1.0, call_s=0.1)
    with pytest.raises(ConfigError, match="raise idle_seconds"):
        measure_energy(quiet.run, meter=quiet, repeats=1, samples_per_run=1, idle_seconds=1.0,
                       clock=quiet.clock, sleep=quiet.sleep)
    busy = FakeWorld(idle_w=4.0, work_j=0.2, call_s=0.1)  # 100 repeats x 0.2 J: measurable
    assert measure_energy(busy.run, meter=busy, repeats=100, samples_per_run=1, idle_seconds=1.0,
                          clock=busy.clock, sleep=busy.sleep)["value"] == pytest.approx(0.2)


def test_measure_energy_checks_its_options():
    world = FakeWorld(idle_w=4.0, work_j=1.0, call_s=0.1)
    with pytest.raises(ConfigError, match="repeats must be at least 1"):
        measure_energy(world.run, meter=world, repeats=0, samples_per_run=1)
    with pytest.raises(ConfigError, match="idle_seconds"):
        measure_energy(world.run, meter=world, repeats=1, samples_per_run=1, idle_seconds=0)
    with pytest.raises(ConfigError, match="unavailable"):
        measure_energy(world.run, meter=NoMeter(), repeats=1, samples_per_run=1)


class CallCounter(Meter):
    """``idle_w`` W of real time plus ``work_j`` J per forward call of a module (counted by a hook)."""

    name = "counted"
    step_j = 1e-6

    def __init__(self, module: torch.nn.Module, idle_w: float, work_j: float):
        super().__init__()
        self.available, self.reason = True, None
        self.idle_w, self.work_j, self.calls = idle_w, work_j, 0
        self.start, self.last = time.perf_counter(), 0.0
        module.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))

    def _advance_j(self):
        now = self.idle_w * (time.perf_counter() - self.start) + self.work_j * self.calls
        used, self.last = now - self.last, now
        return used


def test_a_record_keeps_the_estimate_beside_the_measured_energy(monkeypatch):
    monkeypatch.setattr(meters, "WINDOW_S", 0.01)
    module = torch.nn.Linear(8, 2)
    estimate = {"value": 1e-9, "method": "estimate-45nm", "batch": 1}
    energy = measure_runner_energy(TorchRunner(module, (8,)), estimate, batch=4, threads=1, idle_seconds=0.02,
                                   meter=CallCounter(module, idle_w=2.0, work_j=0.1))
    measured = energy["energy_j_per_sample"]
    assert measured["method"] == "counted" and measured["engine"] == "torch" and measured["batch"] == 4
    assert measured["value"] == pytest.approx(0.1 / 4, rel=0.05)
    assert energy["energy_estimate"] == estimate


def test_a_refused_measurement_keeps_the_labelled_estimate(monkeypatch):
    monkeypatch.setattr(meters, "WINDOW_S", 0.01)
    module = torch.nn.Linear(8, 2)
    estimate = {"value": 1e-9, "method": "estimate-45nm", "batch": 1}
    energy = measure_runner_energy(TorchRunner(module, (8,)), estimate, batch=1, idle_seconds=0.02,
                                   meter=CallCounter(module, idle_w=2.0, work_j=0.0))  # nothing above idle
    assert set(energy) == {"energy_j_per_sample"}
    assert energy["energy_j_per_sample"]["method"] == "estimate-45nm"
    assert energy["energy_j_per_sample"]["meter"] == "counted"
    assert "raise repeats" in energy["energy_j_per_sample"]["meter_error"]


def test_measured_records_name_the_meter_in_env(monkeypatch):
    import wattless
    from wattless.measurement import env

    class FlattenCounter(CallCounter):
        """Counts forward calls of every Flatten: the first layer of the zoo MLP, once per batch."""

        def __init__(self, idle_w: float, work_j: float):
            Meter.__init__(self)
            self.available, self.reason = True, None
            self.idle_w, self.work_j, self.calls = idle_w, work_j, 0
            self.start, self.last = time.perf_counter(), 0.0

        def hook(self, module, *_):
            if isinstance(module, torch.nn.Flatten):
                self.calls += 1

    model = wattless.train("mlp", "digits", model_kwargs={"hidden": [8]}, epochs=1, seed=0)
    meter = FlattenCounter(idle_w=1.0, work_j=0.05)
    monkeypatch.setattr(meters, "WINDOW_S", 0.01)
    monkeypatch.setattr(meters, "IDLE_S", 0.02)
    monkeypatch.setattr(meters, "detect_meter", lambda *args, **kwargs: meter)
    monkeypatch.setattr(env, "detect_meter", lambda *args, **kwargs: meter)
    handle = torch.nn.modules.module.register_module_forward_hook(meter.hook)
    try:
        record = wattless.measure(model, "digits", engines=("torch",), batches=(1,), repeats=2)
    finally:
        handle.remove()
    assert record["env"]["energy_meter"] == "counted"
    assert record["energy_j_per_sample"]["method"] == "counted"
    assert record["energy_j_per_sample"]["value"] == pytest.approx(0.05, rel=0.05)
    assert record["energy_estimate"]["method"] == "estimate-45nm"
