"""Which llama.cpp CPU kernels this machine can run: chosen by what the OS lets a process execute, then proved.

llama.cpp is built once, portably (GGML_NATIVE off, GGML_BACKEND_DL on, GGML_CPU_ALL_VARIANTS on): one
``libggml-cpu-<variant>.so`` per instruction-set level, from plain x86-64 to Sapphire Rapids with AMX. ggml's
own choice reads CPUID, which lists what the processor has, not what the kernel enables for this process: a
sandboxed kernel that lists AVX-512 and AMX without granting them kills the process with SIGILL or SIGSEGV.

So the choice here has three steps:
1. What the processor reports (/proc/cpuinfo flags) narrows the variants to those it could run.
2. What the OS enables narrows them again: the AVX and AVX-512 register state in XCR0 (read with ``xgetbv``)
   and AMX tile data, which Linux grants a process only after ``arch_prctl(ARCH_REQ_XCOMP_PERM)``.
3. A probe proves it: the best remaining variant runs the real model (a prompt and a few tokens) in a
   subprocess; if the probe dies (SIGILL, SIGSEGV) or fails, the next variant is tried.

The result is cached per machine (CPU flags, kernel, library files), so the probes run once.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import logging
import mmap
import os
import platform
import signal
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# ggml's x86 variants (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS), best first, with the /proc/cpuinfo
# flags each one's instructions need.
_BASE = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
_AVX512 = (*_BASE, "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sapphirerapids", (*_AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")),
    ("zen4", (*_AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16")),
    ("cooperlake", (*_AVX512, "avx512_vnni", "avx512_bf16")),
    ("icelake", (*_AVX512, "avx512vbmi", "avx512_vnni")),
    ("cascadelake", (*_AVX512, "avx512_vnni")),
    ("cannonlake", (*_AVX512, "avx512vbmi")),
    ("skylakex", _AVX512),
    ("alderlake", (*_BASE, "avx_vnni")),
    ("haswell", _BASE),
    ("piledriver", ("sse4_2", "avx", "f16c", "fma")),
    ("ivybridge", ("sse4_2", "avx", "f16c")),
    ("sandybridge", ("sse4_2", "avx")),
    ("sse42", ("sse4_2",)),
    ("x64", ()),
)
_NEEDS_AVX_STATE = ("avx", "avx2", "fma", "f16c")
_NEEDS_AVX512_STATE = "avx512"
_NEEDS_AMX = "amx_"


@dataclass(frozen=True)
class CpuReport:
    """What the processor reports and what the OS enables for this process."""

    flags: frozenset[str]  # /proc/cpuinfo
    xcr0: int | None  # None: could not be read (then the flags are taken at their word and the probe decides)
    amx_permitted: bool
    model: str = ""

    @property
    def enabled(self) -> frozenset[str]:
        """The flags whose instructions this process may execute."""
        out = set(self.flags)
        if self.xcr0 is not None:
            if self.xcr0 & 0b110 != 0b110:  # SSE and AVX (YMM) state
                out = {f for f in out if not f.startswith(_NEEDS_AVX_STATE)}
            if self.xcr0 & 0b1110_0000 != 0b1110_0000:  # opmask, ZMM_Hi256, Hi16_ZMM
                out = {f for f in out if not f.startswith(_NEEDS_AVX512_STATE)}
        if not self.amx_permitted:
            out = {f for f in out if not f.startswith(_NEEDS_AMX)}
        return frozenset(out)


def cpu_report() -> CpuReport:
    flags: set[str] = set()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name" and not model:
                model = value.strip()
    xcr0 = _xcr0() if "xsave" in flags and platform.machine() in ("x86_64", "AMD64") else None
    return CpuReport(frozenset(flags), xcr0, _amx(), model)


def _xcr0() -> int | None:
    """XCR0 (the register state the OS saves, hence enables), via ``xgetbv`` in a page of executable memory."""
    # xor ecx, ecx; xgetbv; shl rdx, 32; or rax, rdx; ret
    code = bytes([0x31, 0xC9, 0x0F, 0x01, 0xD0, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3])
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):  # W^X policy: the probe decides instead
        return None
    try:
        page.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        value = int(ctypes.CFUNCTYPE(ctypes.c_uint64)(address)())
        del address
        return value
    finally:
        with contextlib.suppress(BufferError):
            page.close()


ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
SYS_ARCH_PRCTL = 158  # x86-64


def _amx() -> bool:
    """Linux grants AMX tile data to a process only on request; a sandbox may refuse."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) == 0
    except (OSError, AttributeError):
        return False


# ---- the installed build ------------------------------------------------------------------------------------


def library_dirs() -> list[Path]:
    """Where llama-cpp-python's libraries are (without importing it: that loads the native code)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    package = Path(next(iter(spec.submodule_search_locations)))
    # llama-cpp-python installs ggml's backend modules in site-packages/bin unless the build says otherwise
    return [d for d in (package / "lib", package.parent / "bin") if d.is_dir()]


def variant_libraries(dirs: Iterable[Path] | None = None) -> dict[str, Path]:
    """The CPU variant libraries of a portable build, by variant name ({} for a single-CPU build)."""
    found: dict[str, Path] = {}
    for d in library_dirs() if dirs is None else dirs:
        for path in sorted(d.glob("libggml-cpu-*.so")):
            found.setdefault(path.name[len("libggml-cpu-") : -len(".so")], path)
    return found


def candidates(report: CpuReport, libraries: dict[str, Path]) -> list[str]:
    """The variants this process may run, best first."""
    enabled = report.enabled
    return [name for name, needs in VARIANTS if name in libraries and all(f in enabled for f in needs)]


# ---- choosing, with probes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    variant: str | None  # None: a single-CPU build (no variants to choose from)
    library: str | None
    tried: dict[str, str] = field(default_factory=dict)  # variant -> "ok" or why it was refused
    enabled: tuple[str, ...] = ()  # the CPU flags the OS enables (of those llama.cpp uses)
    features: str = ""  # llama.cpp's own system info, as the chosen variant reports it

    def describe(self) -> str:
        if self.variant is None:
            return "a single-CPU build of llama.cpp (no variants): " + (self.features or "features unknown")
        refused = ", ".join(f"{k}: {v}" for k, v in self.tried.items() if v != "ok")
        return f"{self.variant}" + (f" (refused: {refused})" if refused else "") + f"; {self.features}"


Probe = Callable[[Path], tuple[bool, str, str]]  # library -> (ok, why not / "ok", llama.cpp system info)

USED_FLAGS = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni", "avx512f", "avx512vbmi", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_int8")  # fmt: skip


def fingerprint(report: CpuReport, libraries: dict[str, Path], model: Path) -> str:
    parts = [
        " ".join(sorted(report.flags)),
        str(report.xcr0),
        str(report.amx_permitted),
        platform.release(),
        model.name,
        *(f"{n}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for n, p in sorted(libraries.items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def choose(
    model: Path, probe: Probe, cache: Path | None, report: CpuReport | None = None, only: str = "auto"
) -> Choice:
    """The best variant that runs ``model`` here (``only``: that variant or none); probes only on the first call
    for this machine."""
    report = report or cpu_report()
    libraries = variant_libraries()
    enabled = tuple(f for f in USED_FLAGS if f in report.enabled)
    if not libraries:
        return Choice(None, None, {}, enabled)
    if only != "auto":
        if only not in libraries:
            raise RuntimeError(f"no llama.cpp CPU variant {only!r} (built: {', '.join(sorted(libraries))})")
        libraries = {only: libraries[only]}
    key = fingerprint(report, libraries, model)
    if cache is not None and cache.is_file():
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                c = saved["choice"]
                return Choice(**{**c, "enabled": tuple(c["enabled"])})  # JSON has no tuples
    tried: dict[str, str] = {}
    for name, _ in VARIANTS:
        if name in libraries and name not in candidates(report, libraries):
            tried[name] = "not enabled here"
    for name in candidates(report, libraries):
        ok, why, features = probe(libraries[name])
        tried[name] = "ok" if ok else why
        if ok:
            choice = Choice(name, str(libraries[name]), tried, enabled, features)
            _save(cache, key, choice)
            return choice
        log.warning("llama.cpp CPU variant refused", extra={"variant": name, "reason": why})
    raise RuntimeError(
        "no llama.cpp CPU variant runs on this machine: " + "; ".join(f"{k}: {v}" for k, v in tried.items())
    )


def _save(cache: Path | None, key: str, choice: Choice) -> None:
    if cache is None:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "choice": asdict(choice)}, indent=1))
    os.replace(tmp, cache)


def exit_reason(returncode: int) -> str:
    """A process's exit status in words: "killed by SIGILL", "exit status 1"."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
