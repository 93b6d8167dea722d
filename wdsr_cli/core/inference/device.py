"""Which engine and precision ``auto`` runs on this CPU: a rule that follows measurements.

Measured with the bundled x2 ONNX form, one LR image in one call, medians of interleaved
rounds after a warm-up (docs/engines.md "The rule for auto"):

=============================================  ==========  ========  ===========  ==========
CPU (2 cores)                                  512x512 LR  ORT fp32  OpenVINO f32  OV bf16
=============================================  ==========  ========  ===========  ==========
Intel Xeon Sapphire Rapids (AVX-512 + AMX)     issue 31    1.0       0.78-0.87    0.28-0.33
AMD EPYC Zen 4, family 25 model 17             this work   1.0       1.00         0.47
(AVX-512 + AVX512-BF16, no AMX)                1.12 s      (1.12 s)  (1.12 s)     (0.53 s)
AMD EPYC Zen 3 (AVX2 only)                     docs        1.0       not measured no bf16
=============================================  ==========  ========  ===========  ==========

So:

* **bf16** (upscale's ``--precision auto``) wherever OpenVINO reports native bf16 for the CPU
  (``BF16`` in ``OPTIMIZATION_CAPABILITIES``: AMX or AVX512-BF16): both kinds were measured
  2.1-3.5x faster than fp32, and the bf16 form must still pass its check
  (:mod:`.precision`). Elsewhere fp32 (OpenVINO would emulate bf16: no gain to expect).
* **fp32 engine**: OpenVINO on AMX CPUs (measured 0.78-0.87x of ONNX Runtime's time); ONNX
  Runtime elsewhere (Zen 4: a tie, 1.00x; Zen 3: OpenVINO not measured, ONNX Runtime is).
* An engine that is not installed is skipped (OpenVINO -> ONNX Runtime -> MindSpore).

Reading the CPU's flags costs nothing; OpenVINO is asked about bf16 only when it would run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuFacts", "bf16_native", "cpu_facts", "fp32_engine"]


@dataclass(frozen=True)
class CpuFacts:
    name: str
    family: str
    model: str
    flags: frozenset[str]

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def label(self) -> str:
        """E.g. ``AMD EPYC (family 25 model 17, AVX-512, AVX512-BF16)``: the name alone
        ("AMD EPYC") does not tell Zen 3 from Zen 4."""
        isa = ("AVX-512" if "avx512f" in self.flags else
               "AVX2" if "avx2" in self.flags else "no AVX2")
        extra = ", AMX" if self.amx else ", AVX512-BF16" if self.avx512_bf16 else ""
        return f"{self.name} (family {self.family} model {self.model}, {isa}{extra})"


_FACTS: CpuFacts | None = None


def cpu_facts() -> CpuFacts:
    """The first CPU's model and flags from ``/proc/cpuinfo`` (unknown elsewhere)."""
    global _FACTS
    if _FACTS is None:
        info: dict[str, str] = {}
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
            for line in text.split("\n\n")[0].splitlines():
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
        except OSError:
            pass
        import platform

        _FACTS = CpuFacts(info.get("model name") or platform.processor() or "unknown CPU",
                          info.get("cpu family", "?"), info.get("model", "?"),
                          frozenset(info.get("flags", "").split()))
    return _FACTS


def fp32_engine(cpu: CpuFacts) -> tuple[str, str]:
    """(engine, why) of the fastest measured fp32 ONNX engine for this CPU."""
    if cpu.amx:
        return "openvino", "fp32 on an AMX CPU: OpenVINO measured 0.78-0.87x ONNX Runtime's time"
    return "onnxruntime", "fp32 on this CPU: OpenVINO measured no faster than ONNX Runtime"


_NATIVE: bool | None = None


def bf16_native() -> bool:
    """OpenVINO's word that this CPU computes bf16 natively. Where the CPU's flags are known
    and show neither AMX nor AVX512-BF16 the answer is no without importing OpenVINO."""
    global _NATIVE
    if _NATIVE is None:
        cpu = cpu_facts()
        if cpu.flags and not (cpu.amx or cpu.avx512_bf16):
            _NATIVE = False
        else:
            from .backends.ov import native_bf16

            try:
                _NATIVE = native_bf16()
            except Exception:  # OpenVINO missing or blind to the CPU: no bf16
                _NATIVE = False
    return _NATIVE
