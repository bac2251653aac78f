"""The hyperparameter search space, declared once for both searches.

The SageMaker tuning job (`sagemaker_job`) renders it as `ParameterRanges`; the local search
(`local_search`) asks Optuna for values from it. Every dimension names a field of
`yolo_core.hyperparams.Hyperparameters` and is checked against that field when declared (type,
bounds, choices), so a range cannot ask either search for a value training would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters

Kind = Literal["continuous", "integer", "categorical"]
Scale = Literal["linear", "log"]
# Settings of the run rather than of the model: the search sets the budget (epochs) itself, and
# the rest say where a run logs or what it runs on.
NOT_TUNABLE = frozenset(
    {"epochs", "weights", "device", "workers", "threads", "tracking_uri", "experiment_name", "run_name"}
)
# Ultralytics' optimizer "auto" picks its own learning rate and momentum, ignoring these.
_IGNORED_BY_AUTO_OPTIMIZER = ("lr0", "momentum")
_CHECK_EVERY_INTEGER_UP_TO = 512  # small integer ranges are checked value by value (imgsz: x32)


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter to search: a range (`low`..`high`, on `scale`) or a list of choices."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    scale: Scale = "linear"
    choices: tuple[str, ...] = ()

    def values_to_check(self) -> Iterator[Any]:
        """The values whose acceptance by `Hyperparameters` proves the whole range valid."""
        if self.kind == "categorical":
            yield from self.choices
        elif self.kind == "integer" and self.high - self.low <= _CHECK_EVERY_INTEGER_UP_TO:
            yield from range(int(self.low), int(self.high) + 1)
        else:
            yield from (int(self.low), int(self.high)) if self.kind == "integer" else (self.low, self.high)


def continuous(name: str, low: float, high: float, scale: Scale = "linear") -> Dimension:
    return Dimension(name, "continuous", float(low), float(high), scale)


def integer(name: str, low: int, high: int, scale: Scale = "linear") -> Dimension:
    return Dimension(name, "integer", int(low), int(high), scale)


def categorical(name: str, *choices: str) -> Dimension:
    return Dimension(name, "categorical", choices=tuple(str(c) for c in choices))


_FIELD_TYPES = {spec.name: type(spec.default) for spec in fields(Hyperparameters)}
_KIND_OF_TYPE: dict[type, tuple[Kind, ...]] = {
    float: ("continuous", "categorical"),
    int: ("integer", "categorical"),
    str: ("categorical",),
    bool: ("categorical",),
}


def _check(dimension: Dimension) -> None:
    name = dimension.name
    where = f"search space: '{name}'"
    if name not in _FIELD_TYPES:
        raise UserInputError(f"{where} is not a hyperparameter (yolo_core/hyperparams.py)")
    if name in NOT_TUNABLE:
        raise UserInputError(f"{where} is a setting of the run, not something to tune")
    field_type = _FIELD_TYPES[name]
    if dimension.kind not in _KIND_OF_TYPE.get(field_type, ()):
        raise UserInputError(
            f"{where} is a {field_type.__name__}; a {dimension.kind!r} dimension cannot set it"
        )
    if dimension.kind == "categorical":
        if len(set(dimension.choices)) < 2:
            raise UserInputError(f"{where} needs at least two distinct choices")
    elif not dimension.low < dimension.high:
        raise UserInputError(f"{where}: low {dimension.low:g} must be below high {dimension.high:g}")
    elif dimension.scale == "log" and dimension.low <= 0:
        raise UserInputError(f"{where}: a log scale needs low > 0, got {dimension.low:g}")
    for value in dimension.values_to_check():
        try:
            Hyperparameters.from_mapping({name: value})
        except UserInputError as exc:
            raise UserInputError(f"{where}: {value!r} is refused by training ({exc})") from None


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if not names:
            raise UserInputError("search space: no dimensions")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise UserInputError(f"search space: {', '.join(duplicated)} declared more than once")
        for dimension in self.dimensions:
            _check(dimension)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def check_fixed(self, fixed: Mapping[str, Any]) -> Hyperparameters:
        """The fixed hyperparameters of every trial, checked against the space; typed.

        A tuned name may not be fixed too (SageMaker refuses it as static and tuned at once), and a
        tuned lr0 or momentum needs an explicit optimizer: "auto" would ignore both.
        """
        clash = sorted(set(fixed) & set(self.names))
        if clash:
            raise UserInputError(f"search space: {', '.join(clash)} both fixed and tuned; fix or tune each")
        hp = Hyperparameters.from_mapping(fixed, source="fixed hyperparameters")
        ignored = [n for n in _IGNORED_BY_AUTO_OPTIMIZER if n in self.names]
        if ignored and "optimizer" not in self.names and hp.optimizer == "auto":
            raise UserInputError(
                f"search space: optimizer 'auto' chooses its own {' and '.join(ignored)}; "
                "fix an optimizer (optimizer=SGD) or tune it"
            )
        if "optimizer" in self.names and "auto" in self.dimension("optimizer").choices and ignored:
            raise UserInputError("search space: optimizer choice 'auto' would ignore the tuned lr0/momentum")
        return hp

    def dimension(self, name: str) -> Dimension:
        return next(d for d in self.dimensions if d.name == name)

    def to_json(self) -> str:
        """The space as logged with a search (MLflow parameter, artifact)."""
        return json.dumps([d.__dict__ for d in self.dimensions], sort_keys=True)


# The one declaration. Narrow enough that a few short trials on a CPU explore it, wide enough to
# matter on real data; a GPU tuning job may declare more through `SearchSpace` in Python.
SEARCH_SPACE = SearchSpace(
    (
        continuous("lr0", 1e-4, 3e-2, scale="log"),
        continuous("momentum", 0.80, 0.98),
        continuous("weight_decay", 1e-5, 1e-2, scale="log"),
        integer("nbs", 8, 64, scale="log"),
        categorical("optimizer", "SGD", "AdamW"),
    )
)
