"""The llama.cpp CPU variant choice on machines other than this one: scripted CPU reports and probes in,
the chosen variant out."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogue.llamacpp import cpu

pytestmark = pytest.mark.unit

AVX2_ONLY = frozenset({"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "xsave"})
SAPPHIRE = AVX2_ONLY | {
    "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "avx_vnni",
}  # fmt: skip
ALL_STATE = 0x602E7  # x87, SSE, AVX, opmask, ZMM, AMX tile config and data (what this reference machine has)


@pytest.fixture
def libraries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A portable build's variant libraries (empty files: the probe is scripted)."""
    found = {}
    for name, _ in cpu.VARIANTS:
        path = tmp_path / f"libggml-cpu-{name}.so"
        path.write_bytes(b"")
        found[name] = path
    monkeypatch.setattr(cpu, "library_dirs", lambda: [tmp_path])
    return found


def test_an_avx2_only_cpu_gets_the_haswell_kernels(libraries: dict[str, Path]) -> None:
    report = cpu.CpuReport(AVX2_ONLY, xcr0=0b111, amx_permitted=False)
    assert cpu.candidates(report, libraries)[0] == "haswell"
    assert "skylakex" not in cpu.candidates(report, libraries)


def test_avx512_that_the_os_does_not_enable_is_not_used(libraries: dict[str, Path]) -> None:
    # the processor lists AVX-512 but XCR0 lacks the ZMM state: a kernel that does not save those registers
    report = cpu.CpuReport(SAPPHIRE, xcr0=0b111, amx_permitted=False)
    assert cpu.candidates(report, libraries)[0] == "alderlake"
    assert not [c for c in cpu.candidates(report, libraries) if c in ("skylakex", "icelake", "zen4")]


def test_amx_needs_the_kernels_permission(libraries: dict[str, Path]) -> None:
    without = cpu.CpuReport(SAPPHIRE, xcr0=ALL_STATE, amx_permitted=False)
    granted = cpu.CpuReport(SAPPHIRE, xcr0=ALL_STATE, amx_permitted=True)
    assert cpu.candidates(without, libraries)[0] == "zen4"
    assert cpu.candidates(granted, libraries)[0] == "sapphirerapids"


def test_no_avx_state_means_no_avx_at_all(libraries: dict[str, Path]) -> None:
    report = cpu.CpuReport(AVX2_ONLY, xcr0=0b011, amx_permitted=False)  # SSE only
    assert cpu.candidates(report, libraries) == ["sse42", "x64"]


def test_a_variant_whose_probe_dies_is_refused_and_the_next_is_proved(
    libraries: dict[str, Path], tmp_path: Path
) -> None:
    # the reference machine: XCR0 and arch_prctl both grant AMX, yet the AMX kernels die with SIGILL
    report = cpu.CpuReport(SAPPHIRE, xcr0=ALL_STATE, amx_permitted=True)
    probed: list[str] = []

    def probe(library: Path) -> tuple[bool, str, str]:
        name = library.name.removeprefix("libggml-cpu-").removesuffix(".so")
        probed.append(name)
        return (False, "killed by SIGILL", "") if name == "sapphirerapids" else (True, "ok", f"CPU : {name}")

    cache = tmp_path / "choice.json"
    choice = cpu.choose(tmp_path / "m.gguf", probe, cache, report)
    assert (choice.variant, probed) == ("zen4", ["sapphirerapids", "zen4"])
    assert choice.tried == {"sapphirerapids": "killed by SIGILL", "zen4": "ok"}  # no probe after the first that runs
    assert choice.library == str(libraries["zen4"]) and choice.features == "CPU : zen4"
    # the next start on this machine reads the choice instead of probing again
    again = cpu.choose(tmp_path / "m.gguf", probe, cache, report)
    assert again == choice and probed == ["sapphirerapids", "zen4"]
    # another machine (other flags) probes anew
    other = cpu.choose(tmp_path / "m.gguf", probe, cache, cpu.CpuReport(AVX2_ONLY, 0b111, False))
    assert other.variant == "haswell" and probed[-1] == "haswell"


def test_a_forced_variant_is_the_only_one_tried(libraries: dict[str, Path], tmp_path: Path) -> None:
    report = cpu.CpuReport(SAPPHIRE, xcr0=ALL_STATE, amx_permitted=False)
    choice = cpu.choose(tmp_path / "m.gguf", lambda lib: (True, "ok", "x"), None, report, only="haswell")
    assert choice.variant == "haswell" and list(choice.tried) == ["haswell"]
    with pytest.raises(RuntimeError, match="no llama.cpp CPU variant 'pentium'"):
        cpu.choose(tmp_path / "m.gguf", lambda lib: (True, "ok", "x"), None, report, only="pentium")


def test_when_nothing_runs_the_error_lists_every_refusal(libraries: dict[str, Path], tmp_path: Path) -> None:
    report = cpu.CpuReport(AVX2_ONLY, xcr0=0b111, amx_permitted=False)
    with pytest.raises(RuntimeError, match=r"haswell: killed by SIGSEGV.*x64: killed by SIGSEGV"):
        cpu.choose(tmp_path / "m.gguf", lambda lib: (False, "killed by SIGSEGV", ""), None, report)


def test_a_single_cpu_build_has_no_choice_to_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "library_dirs", lambda: [tmp_path])
    choice = cpu.choose(tmp_path / "m.gguf", lambda lib: (True, "ok", ""), None, cpu.CpuReport(AVX2_ONLY, 7, False))
    assert choice.variant is None and "single-CPU build" in choice.describe()


def test_this_machine_reports_what_its_os_enables() -> None:
    report = cpu.cpu_report()
    assert report.enabled <= report.flags
    assert cpu.exit_reason(-4) == "killed by SIGILL" and cpu.exit_reason(1) == "exit status 1"
