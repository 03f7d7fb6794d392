"""The footprint of a piece of work (training, compression): wall time, CPU time, energy and CO2e.

Energy is read from a hardware meter (RAPL, see ``meters.py``) when the machine has one, else estimated
from the process's CPU time x a power per busy core, and always labelled with how it was obtained.
CO2e (g) = energy (kWh) x the grid's carbon intensity (g CO2e/kWh).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from .meters import Meter, detect_meter

CPU_WATTS_ENV = "WATTLESS_CPU_WATTS_PER_CORE"
DEFAULT_CPU_WATTS_PER_CORE = 10.0
"""W per busy core for the CPU-time estimate: server CPUs' TDP per core is 4-9 W (AMD EPYC 7763: 280 W / 64
cores = 4.4 W; Intel Xeon Platinum 8380: 270 W / 40 = 6.8 W; Xeon Gold 6248R: 205 W / 24 = 8.5 W), and
desktop parts are higher (65 W / 8 cores = 8.1 W). 10 W rounds up to cover uncore and memory: an upper
estimate, not a measurement. Override with ``$WATTLESS_CPU_WATTS_PER_CORE``."""
GRID_INTENSITY_ENV = "WATTLESS_GRID_INTENSITY"
DEFAULT_GRID_INTENSITY = 475.0
"""g CO2e/kWh: the world-average carbon intensity of electricity generation (IEA, Global Energy & CO2
Status Report 2019, for 2018). Override with ``--grid-intensity``, ``$WATTLESS_GRID_INTENSITY`` or, with
CodeCarbon installed, ``--carbon-country ISO3``."""
CPU_ESTIMATE_METHOD = "estimate-cpu-time"
POLL_S = 30.0
"""How often (s) a meter is read during long work, so a RAPL counter cannot wrap twice between reads."""
_J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class GridIntensity:
    """Carbon intensity of the electricity used, in g CO2e/kWh, and where the figure comes from."""

    g_per_kwh: float
    source: str


def grid_intensity(value: float | None = None, country: str | None = None) -> GridIntensity:
    """The grid's carbon intensity: ``value`` (g CO2e/kWh), else ``country``'s from CodeCarbon's bundled data
    (offline), else ``$WATTLESS_GRID_INTENSITY``, else the world average :data:`DEFAULT_GRID_INTENSITY`.

    Raises:
        ConfigError: both given, a negative or unreadable value, CodeCarbon missing, or an unknown country.
    """
    if value is not None and country is not None:
        raise ConfigError("give either --grid-intensity or --carbon-country, not both")
    if country is not None:
        return country_grid_intensity(country)
    if value is not None:
        return GridIntensity(_non_negative(value, "--grid-intensity"), "--grid-intensity")
    if os.environ.get(GRID_INTENSITY_ENV):
        env_value = _float_from_env(GRID_INTENSITY_ENV)
        return GridIntensity(_non_negative(env_value, f"${GRID_INTENSITY_ENV}"), f"${GRID_INTENSITY_ENV}")
    return GridIntensity(DEFAULT_GRID_INTENSITY, "world average (IEA 2019)")


def country_grid_intensity(country: str) -> GridIntensity:
    """Carbon intensity (g CO2e/kWh) of ``country``'s electricity (ISO 3166-1 alpha-3, e.g. FRA) from the
    energy-mix table bundled with CodeCarbon; nothing is fetched from the network.

    Raises:
        ConfigError: CodeCarbon is not installed, or has no figure for ``country``.
    """
    code = country.strip().upper()
    try:
        from codecarbon.input import DataSource
    except ImportError:
        raise ConfigError(f"--carbon-country {country} needs CodeCarbon; pip install 'wattless[carbon]', or give "
                          "--grid-intensity G_PER_KWH") from None
    mix = DataSource().get_global_energy_mix_data()
    entry = mix.get(code)
    if not isinstance(entry, dict) or entry.get("carbon_intensity") is None:
        raise ConfigError(f"--carbon-country {country!r}: CodeCarbon has no carbon intensity for it; use an "
                          "ISO 3166-1 alpha-3 code such as FRA, DEU or USA, or give --grid-intensity G_PER_KWH")
    year = f" {entry['year']}" if entry.get("year") else ""
    return GridIntensity(float(entry["carbon_intensity"]), f"CodeCarbon {code}{year}")


def cpu_watts_per_core(value: float | None = None) -> float:
    """W per busy core for the CPU-time estimate: ``value``, else ``$WATTLESS_CPU_WATTS_PER_CORE``, else
    :data:`DEFAULT_CPU_WATTS_PER_CORE`."""
    if value is None:
        value = _float_from_env(CPU_WATTS_ENV) if os.environ.get(CPU_WATTS_ENV) else DEFAULT_CPU_WATTS_PER_CORE
    if not value > 0:
        raise ConfigError(f"watts per core must be positive, got {value}; set ${CPU_WATTS_ENV} to e.g. 10")
    return float(value)


def process_cpu_seconds() -> float:
    """CPU time (s, user + system) of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def co2e_grams(energy_j: float, g_per_kwh: float) -> float:
    """CO2e (g) of ``energy_j`` J of electricity at ``g_per_kwh`` g CO2e/kWh."""
    return energy_j / _J_PER_KWH * g_per_kwh


@dataclass(frozen=True)
class FootprintResult:
    """What a piece of work cost: times in s, energy in J (and Wh), CO2e in g."""

    wall_s: float
    cpu_s: float
    energy_j: float
    method: str
    watts_per_core: float | None
    grid_g_per_kwh: float
    grid_source: str
    co2e_g: float

    @property
    def energy_wh(self) -> float:
        return self.energy_j / 3600

    def as_dict(self) -> dict:
        """JSON-ready: the fields plus ``energy_wh``."""
        return {**asdict(self), "energy_wh": self.energy_wh}

    def summary(self) -> str:
        """One line: ``footprint: 12.3 s wall, 20.1 s CPU, 0.056 Wh (estimate-cpu-time, 10 W/core), ...``."""
        how = self.method if self.watts_per_core is None else f"{self.method}, {self.watts_per_core:g} W/core"
        return (f"footprint: {self.wall_s:.1f} s wall, {self.cpu_s:.1f} s CPU, {self.energy_wh:.3g} Wh ({how}), "
                f"{self.co2e_g:.3g} g CO2e at {self.grid_g_per_kwh:.4g} g/kWh")


class Footprint:
    """Context manager measuring the work done inside it; ``result`` is a :class:`FootprintResult` after exit.

    Energy comes from ``meter`` (default :func:`~wattless.measurement.meters.detect_meter`) when available:
    the metered devices' whole energy over the wall time (RAPL counts every process on the socket), method
    "rapl"/"nvml". Otherwise it is estimated as this process's CPU seconds x ``watts_per_core``, method
    "estimate-cpu-time". ``grid`` defaults to :func:`grid_intensity`.

    Example:
        >>> with Footprint() as footprint:  # doctest: +SKIP
        ...     train_the_model()
        >>> print(footprint.result.summary())  # doctest: +SKIP
    """

    def __init__(self, *, meter: Meter | None = None, watts_per_core: float | None = None,
                 grid: GridIntensity | None = None, poll_s: float = POLL_S) -> None:
        self.meter = detect_meter() if meter is None else meter
        self.watts_per_core = None if self.meter.available else cpu_watts_per_core(watts_per_core)
        self.grid = grid_intensity() if grid is None else grid
        self.poll_s = poll_s
        self.result: FootprintResult | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def __enter__(self) -> Footprint:
        self._start_wall, self._start_cpu = time.perf_counter(), process_cpu_seconds()
        if self.meter.available:
            self._start_j = self.meter.read()
            self._poller = threading.Thread(target=self._poll, name="wattless-footprint-meter", daemon=True)
            self._poller.start()
        return self

    def __exit__(self, *exc) -> None:
        wall_s = time.perf_counter() - self._start_wall
        cpu_s = process_cpu_seconds() - self._start_cpu
        if self._poller is not None:
            self._stop.set()
            self._poller.join()
            energy_j, method = self.meter.read() - self._start_j, self.meter.name
        else:
            energy_j, method = cpu_s * self.watts_per_core, CPU_ESTIMATE_METHOD
        self.result = FootprintResult(wall_s=wall_s, cpu_s=cpu_s, energy_j=energy_j, method=method,
                                      watts_per_core=self.watts_per_core, grid_g_per_kwh=self.grid.g_per_kwh,
                                      grid_source=self.grid.source,
                                      co2e_g=co2e_grams(energy_j, self.grid.g_per_kwh))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.meter.read()


def _float_from_env(name: str) -> float:
    text = os.environ[name]
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"${name}={text!r} is not a number; set it to e.g. 10 or unset it") from None


def _non_negative(value: float, what: str) -> float:
    if not value >= 0:
        raise ConfigError(f"{what} must be a carbon intensity of 0 g CO2e/kWh or more, got {value}")
    return float(value)
