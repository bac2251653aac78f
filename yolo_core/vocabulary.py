"""The words every part of the toolkit shares, in one place, without importing torch.

- true/false words, for hyperparameters, request options and pipeline parameters alike;
- the precision names training and inference accept (command lines check their flags against
  these at once, before seconds of imports);
- the CPU capability probe: which feature flags the CPU lists, whether it has bf16 instructions
  (AVX-512 BF16 or Intel AMX) and its model name, read from /proc/cpuinfo and never assumed;
- the one-line error rule, whose owner is `yolo_core.errors.one_line` (re-exported here).
"""

from __future__ import annotations

from pathlib import Path

from yolo_core.errors import UserInputError, exception_line, one_line

__all__ = [
    "CPUINFO",
    "FALSE_WORDS",
    "INFERENCE_PRECISIONS",
    "TRAINING_PRECISIONS",
    "TRUE_WORDS",
    "cpu_flags",
    "cpu_has_amx_bf16",
    "cpu_has_bf16_instructions",
    "cpu_model_name",
    "exception_line",
    "one_line",
    "parse_bool",
]

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

# Training: "amp" is fp16 autocast with gradient scaling. Inference: "fp16" runs the model in half;
# "int8" runs a model the user quantised, whose measured mAP cost sits beside it (OpenVINO).
TRAINING_PRECISIONS = ("auto", "fp32", "amp", "bf16")
INFERENCE_PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")

CPUINFO = Path("/proc/cpuinfo")
# Native bf16 arithmetic: AVX-512 BF16 dot products (AMD Zen 4+, Intel Cooper Lake+) or AMX tiles
# (Intel Sapphire Rapids+). Without either, bf16 is emulated and runs many times slower than fp32.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def parse_bool(text: str, what: str) -> bool:
    """A true/false word (any case, blanks around it ignored); anything else is a `UserInputError`
    naming `what` (e.g. "parameter UseSpotInstances")."""
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UserInputError(f"{what}: {text!r} is not true or false")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The feature flags of the first CPU listed, or an empty set where there is no /proc."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_amx_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU lists the `amx_bf16` flag (bf16 matrix units); never assumed."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def cpu_has_bf16_instructions(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU computes in bf16 natively (`avx512_bf16` or `amx_bf16`). Whether that is
    also faster than fp32 for a given model is measured, not read from a flag."""
    return bool(BF16_FLAGS & cpu_flags(cpuinfo))


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    """The first CPU's model name ("Intel(R) Xeon(R) ..."), or "unknown" where there is no /proc."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"
