"""Compiling an exported C library: a shared library for this machine (the ``native`` engine), objects for a
Cortex-M microcontroller, and the sizes of their sections read from the ELF files (never a formula)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

PORTABLE_FLAGS = ("-O2", "-std=c99")
"""Flags of a library meant to be shipped: any x86-64 or ARM CPU of the family runs it."""
HOST_FLAGS = ("-O3", "-march=native", "-std=c99")
"""Flags of the library this machine times (its own instruction set); the record names them."""
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g")
COMPILE_TIMEOUT_S = 300


@dataclass
class Built:
    """A compiled file, the command's flags, how long it took (s), and its section sizes (bytes)."""

    path: Path
    compiler: str
    flags: tuple[str, ...]
    seconds: float
    sections: dict[str, int] = field(default_factory=dict)


def find_compiler(name: str = "cc") -> str:
    """The C compiler on PATH (``cc``, else ``gcc`` or ``clang``), or one clear error naming the package."""
    for candidate in (name, "gcc", "clang") if name == "cc" else (name,):
        found = shutil.which(candidate)
        if found:
            return found
    package = "gcc-arm-none-eabi" if "arm" in name else "gcc (or build-essential)"
    raise ConfigError(f"no C compiler {name!r} found; install one: apt-get install {package}")


def compile_c(sources: list[Path], out: Path, *, compiler: str = "cc", flags: tuple[str, ...] = PORTABLE_FLAGS,
              shared: bool = False, defines: tuple[str, ...] = (), link: bool = True) -> Built:
    """Compile ``sources`` into ``out`` (a shared library, an object with ``link=False``, else an executable).

    Raises:
        ConfigError: no compiler, or the compiler's first error line and the kept source folder.
    """
    cc = find_compiler(compiler)
    command = [cc, *flags, *(f"-D{d}" for d in defines), *(["-fPIC", "-shared"] if shared else []),
               *([] if link else ["-c"]), "-o", str(out), *map(str, sources), *(["-lm"] if link else [])]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the C compiler took over {COMPILE_TIMEOUT_S} s on {sources[0].parent}; the sources are "
                          "kept there") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines() or ["?"]
        raise ConfigError(f"the C compiler failed: {errors[0].strip()[:300]} (sources kept in "
                          f"{sources[0].parent})")
    return Built(out, Path(cc).name, tuple(flags), time.perf_counter() - started, section_sizes(out))


def section_sizes(path: Path) -> dict[str, int]:
    """Bytes of code (``text``), constant data (``rodata``), initialised data (``data``) and zeroed data (``bss``)
    in an ELF file, summing every section of each kind (``.text.*`` with ``-ffunction-sections`` and so on)."""
    from elftools.elf.elffile import ELFFile

    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    with open(path, "rb") as file:
        for section in ELFFile(file).iter_sections():
            name = section.name
            for kind in sizes:
                if name == f".{kind}" or name.startswith(f".{kind}."):
                    sizes[kind] += section["sh_size"]
    return sizes
