"""The one typed set of hyperparameters, with defaults, shared by every step.

SageMaker hands hyperparameters over as a JSON object of strings (`{"epochs": "50"}`); Python
callers pass typed values. Both go through the same checks, so a field is added here once and a
bad value is reported the same way everywhere: a `UserInputError` that names the field.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from yolo_core.errors import UserInputError
from yolo_core.vocabulary import TRAINING_PRECISIONS, parse_bool

MODEL_NAME = re.compile(r"^yolo11[nsmlx]$")
OPTIMIZERS = ("auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "MuSGD")
AUGMENT_PRESETS = ("aerial", "ultralytics", "none")
CACHE_MODES = ("", "ram", "disk")
# Keys SageMaker or its tuner add to hyperparameters.json on their own; they are not ours to check.
_PLATFORM_KEY = re.compile(r"^(sagemaker_|_tuning_|_)")
# Once accepted and never read: tiling is preprocess's (one tiler, and the dataset hash covers it).
_REMOVED = {"tile_size": "--tile-size", "tile_overlap": "--tile-overlap"}


def _hp(
    default: Any,
    help: str,  # noqa: A002 - reads like the CLI's own word
    *,
    ultralytics: str = "",
    on_resume: bool = False,
    **meta: Any,
) -> Any:
    """A field: its default, help and checks (`min`, `max`, `choices`), and for Ultralytics:

    `ultralytics` names the train argument that takes the value as it is (`ultralytics_args`);
    `on_resume` marks a setting of the host, passed again when a run resumes, maybe elsewhere.
    """
    if ultralytics:
        meta = {**meta, "ultralytics": ultralytics, "on_resume": on_resume}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Hyperparameters:
    """What a training run (and the steps around it) may be told; every field has a default."""

    model: str = _hp("yolo11n", "architecture, built from yolo11{n,s,m,l,x}.yaml (never downloaded)")
    weights: str = _hp("", "optional starting weights: a .pt path, or a file in the 'weights' channel")
    epochs: int = _hp(
        100, "total epochs of the run, counted across spot restarts", min=1, ultralytics="epochs"
    )
    imgsz: int = _hp(
        640, "training and validation image size in pixels (multiple of 32)", min=32, ultralytics="imgsz"
    )
    batch: int = _hp(16, "images per batch; -1 picks the largest that fits on one GPU", min=-1)
    nbs: int = _hp(
        64, "nominal batch size: gradients accumulate up to this many images", min=1, ultralytics="nbs"
    )
    optimizer: str = _hp("auto", "optimizer name", choices=OPTIMIZERS, ultralytics="optimizer")
    lr0: float = _hp(0.01, "initial learning rate", min=1e-8, max=1.0, ultralytics="lr0")
    lrf: float = _hp(0.01, "final learning rate as a fraction of lr0", min=1e-6, max=1.0, ultralytics="lrf")
    momentum: float = _hp(0.937, "SGD momentum / Adam beta1", min=0.0, max=1.0, ultralytics="momentum")
    weight_decay: float = _hp(0.0005, "weight decay", min=0.0, max=0.1, ultralytics="weight_decay")
    warmup_epochs: float = _hp(3.0, "epochs of learning-rate warm-up", min=0.0, ultralytics="warmup_epochs")
    cos_lr: bool = _hp(False, "cosine learning-rate schedule instead of linear", ultralytics="cos_lr")
    patience: int = _hp(
        100,
        "stop after N epochs without a better validation fitness (0: never)",
        min=0,
        ultralytics="patience",
    )
    close_mosaic: int = _hp(10, "turn mosaic off for the last N epochs", min=0, ultralytics="close_mosaic")
    mosaic: float = _hp(1.0, "probability of mosaic augmentation", min=0.0, max=1.0, ultralytics="mosaic")
    augment: str = _hp("aerial", "augmentation preset", choices=AUGMENT_PRESETS)
    augment_overrides: dict = _hp({}, "JSON object overriding fields of the augmentation preset")
    checkpoint_interval: int = _hp(
        1, "write a resumable checkpoint every N epochs", min=1, ultralytics="save_period"
    )
    precision: str = _hp(
        "auto",
        "fp32, amp (fp16 mixed precision, GPU), bf16 (autocast; a CPU needs avx512_bf16 or amx_bf16), "
        "or auto (amp on a GPU; on a CPU bf16 where measured faster, else fp32)",
        choices=TRAINING_PRECISIONS,
    )
    int8_calibration_images: int = _hp(
        0,
        "after training, quantise the OpenVINO model to int8 on this many training images and "
        "measure its mAP50-95 cost on val, beside the weights (0: no int8 model)",
        min=0,
    )
    device: str = _hp("", "'' uses every visible GPU (else the CPU), or 'cpu', '0', '0,1', ...")
    workers: int = _hp(
        8,
        "dataloader worker processes per GPU (Ultralytics uses 0 on CPU)",
        min=0,
        ultralytics="workers",
        on_resume=True,
    )
    cache: str = _hp("", "cache decoded images: '', 'ram' or 'disk'", choices=CACHE_MODES)
    seed: int = _hp(0, "random seed", min=0, ultralytics="seed")
    deterministic: bool = _hp(False, "deterministic algorithms (slower)", ultralytics="deterministic")
    val: bool = _hp(
        True, "validate after every epoch (the last epoch is always validated)", ultralytics="val"
    )
    plots: bool = _hp(
        True, "save training plots (logged to MLflow as artifacts)", ultralytics="plots", on_resume=True
    )
    threads: int = _hp(0, "CPU threads for torch (0: every core this process may use)", min=0)
    tracking_uri: str = _hp(
        "", "MLflow tracking URI: '' (sqlite in the checkpoint folder), http(s)://, arn:..., or 'none'"
    )
    experiment_name: str = _hp("drone-yolo", "MLflow experiment name")
    run_name: str = _hp("", "MLflow run name ('' lets MLflow choose)")

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = _coerce(spec.name, getattr(self, spec.name), _default_of(spec))
            _check_range(spec, value)
            object.__setattr__(self, spec.name, value)
        model = self.model.removesuffix(".yaml")
        if not MODEL_NAME.match(model):
            raise UserInputError(f"hyperparameter 'model': {self.model!r} is not one of yolo11n/s/m/l/x")
        object.__setattr__(self, "model", model)
        if self.imgsz % 32:
            raise UserInputError(f"hyperparameter 'imgsz': {self.imgsz} is not a multiple of 32")
        if self.batch == 0:
            raise UserInputError("hyperparameter 'batch': must be -1 (automatic) or at least 1")

    @classmethod
    def field_names(cls) -> list[str]:
        return [spec.name for spec in fields(cls)]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str = "hyperparameters") -> Hyperparameters:
        """Build from SageMaker's string values (or typed values); unknown names are errors.

        Keys SageMaker adds itself (`sagemaker_*`, tuner keys starting with `_`) are ignored.
        """
        known = set(cls.field_names())
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if _PLATFORM_KEY.match(key):
                continue
            if key in _REMOVED:
                raise UserInputError(
                    f"{source}: hyperparameter '{key}' was removed: tile in preprocess "
                    f"({_REMOVED[key]}), whose dataset the training step reads"
                )
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise UserInputError(f"{source}: unknown hyperparameter '{key}'{suggestion}")
            values[key] = value
        try:
            return cls(**values)
        except UserInputError as exc:
            raise UserInputError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_strings(self) -> dict[str, str]:
        """The form SageMaker wants: every value a string (dicts as JSON)."""
        return {key: _to_string(value) for key, value in self.to_dict().items()}

    def changed(self, **updates: Any) -> Hyperparameters:
        return replace(self, **updates)


def ultralytics_args(hp: Hyperparameters, resuming: bool = False) -> dict[str, Any]:
    """The fields Ultralytics takes as they are, under the names their declarations give it.

    A resumed run gets only the host settings (`on_resume=True`): Ultralytics restores the rest
    from the checkpoint.
    """
    return {
        spec.metadata["ultralytics"]: getattr(hp, spec.name)
        for spec in fields(hp)
        if "ultralytics" in spec.metadata and (spec.metadata["on_resume"] or not resuming)
    }


def _default_of(spec: Any) -> Any:
    return spec.default_factory() if spec.default is MISSING else spec.default


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _unquote(text: str) -> str:
    """SageMaker SDKs sometimes JSON-encode strings twice: '"yolo11n"' means 'yolo11n'."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Turn a value (often a string) into the field's type, or say which field is wrong."""
    kind = type(default)
    if kind is str and isinstance(value, str):
        return _unquote(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise UserInputError(f"hyperparameter '{name}': expected {kind.__name__}, got {value!r}")
    text = _unquote(value)
    try:
        if kind is bool:
            return parse_bool(text, f"hyperparameter '{name}'")  # a UserInputError is a ValueError
        if kind is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if kind is float:
            return float(text)
        if kind is dict:
            parsed = json.loads(text) if text else {}
            if not isinstance(parsed, dict):
                raise ValueError(text)
            return parsed
    except ValueError:
        raise UserInputError(f"hyperparameter '{name}': {value!r} is not a valid {kind.__name__}") from None
    return text


def _check_range(spec: Any, value: Any) -> None:
    meta = spec.metadata
    if "choices" in meta and value not in meta["choices"]:
        options = ", ".join(repr(c) for c in meta["choices"])
        raise UserInputError(f"hyperparameter '{spec.name}': {value!r} is not one of {options}")
    if "min" in meta and value < meta["min"]:
        raise UserInputError(f"hyperparameter '{spec.name}': {value} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise UserInputError(f"hyperparameter '{spec.name}': {value} is above the maximum {meta['max']}")


def describe() -> str:
    """One line per hyperparameter, for `--help` texts and the README."""
    lines = []
    for spec in fields(Hyperparameters):
        default = _to_string(_default_of(spec))
        choices = spec.metadata.get("choices")
        allowed = f"; one of {', '.join(repr(c) for c in choices)}" if choices else ""
        lines.append(
            f"  {spec.name:<20} {type(_default_of(spec)).__name__:<5} "
            f"default {default!r}{allowed}\n      {spec.metadata['help']}"
        )
    return "\n".join(lines)
