"""Checks of command-line values shared by the container commands (`serve`, `evaluate`).

A bad flag must fail at once with one line naming it, not as a traceback minutes later (or in
a server's background thread after the port has opened). The number checks are argparse `type`
functions, so the message reads `argument --flag: ...`; they also run on string defaults, which
is how values from environment variables get checked.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from yolo_core.errors import UserInputError, exception_line

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto, cpu, cuda, cuda:N, or a GPU index N"
PRECISION_HELP = (
    "auto: the fastest this host runs with fp32's boxes (measured at load); or fp32, bf16, fp16, "
    "int8 (a model quantised by the `quantize` command, its measured mAP cost beside it)"
)


def _describe(kind: type, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    noun = "an integer" if kind is int else "a number"
    if low is not None and high is not None and not (low_open or high_open):
        return f"{noun} from {low:g} to {high:g}"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    return f"{noun} {' and '.join(bounds)}".strip()


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: the flag and the reason, not the usage too
    (a container log shows a long usage block first and the reason last)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def number(
    kind: type,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse `type` for an int or float within bounds; the error states the allowed range."""
    allowed = _describe(kind, low, high, low_open, high_open)

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: must be {allowed}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its "invalid ... value" fallback
    return convert


def zero_or_at_least(minimum: int, zero_means: str) -> Callable[[str], int]:
    """An argparse `type` for an int that is 0 (a switch: `zero_means`) or at least `minimum`."""
    non_negative = number(int, 0)

    def convert(text: str) -> int:
        value = non_negative(text)
        if 0 < value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be 0 ({zero_means}) or >= {minimum}")
        return value

    return convert


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse `type` for one of `options`. Unlike `choices=`, it also checks string defaults
    (values from environment variables), which argparse converts but never checks."""

    def convert(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return convert


def writable_folder(path: Path, flag: str) -> Path:
    """Create the output folder now, so that a file in the way or a read-only parent is a
    one-line error at start-up rather than a traceback on the first write."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserInputError(f"{flag} {path}: exists and is not a folder") from None
    except OSError as exc:
        raise UserInputError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserInputError(f"{flag} {path}: the folder is not writable")
    return path


def resolve_hardware(device: str, precision: str, backend: str = "auto") -> tuple[str, list[str]]:
    """(device, the engines left to measure as "backend precision") as the predictor will resolve
    them, checked before any model loads; a value this machine cannot run is a `UserInputError`
    naming the flag."""
    from yolo_core.infer.engine_candidates import engine_candidates
    from yolo_core.infer.hardware import resolve_device
    from yolo_core.infer.host import probe_host
    from yolo_core.runtime import cpu_thread_count

    try:
        resolved = resolve_device(device)
    except ValueError as exc:
        raise UserInputError(f"--device: {exception_line(exc)}") from None
    except RuntimeError:  # torch.device's answer to a string it cannot parse
        resolved = None
    if resolved is None or resolved.type not in {"cpu", "cuda"}:
        raise UserInputError(f"--device: {device!r} is not a device here; use {DEVICE_HELP}")
    _check_gpu_index(resolved, device)
    try:
        candidates = engine_candidates(probe_host(resolved, cpu_thread_count()), backend, precision)
    except ValueError as exc:
        flag = "--backend" if backend != "auto" and precision == "auto" else "--precision"
        raise UserInputError(f"{flag}: {exception_line(exc)}") from None
    return str(resolved), [spec.name for spec in candidates]


def _check_gpu_index(resolved: torch.device, device: str) -> None:
    import torch

    count = torch.cuda.device_count()
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        raise UserInputError(f"--device: {device!r}: this machine has {count} GPU(s), numbered from 0")
