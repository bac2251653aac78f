"""CONTRIBUTING's "Add a hyperparameter" recipe, followed literally, reaches Ultralytics.

The recipe's example declaration is read from CONTRIBUTING.md and added, as its one line, to a
copy of `yolo_core/hyperparams.py`; the copy is imported in place of the real module.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from ultralytics.cfg import get_cfg

from yolo_core import hyperparams
from yolo_core.errors import UserInputError
from yolo_core.train.augment import augment_config
from yolo_core.train.checkpoint import CheckpointStore
from yolo_core.train.data_source import DataSpec
from yolo_core.train.trainer import _Plan, _ultralytics_args

ROOT = Path(__file__).resolve().parent.parent


def _recipe_declaration() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    recipe = text.split("### Add a hyperparameter", 1)[1].split("\n### ", 1)[0]
    match = re.search(r"`(\w+: \w+ = _hp\(.*?\))`", recipe)
    assert match, "the recipe shows no one-line `_hp(...)` declaration"
    return match.group(1)


def _hyperparams_with(declaration: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    source = Path(hyperparams.__file__).read_text()
    body_end = "\n    def __post_init__"
    assert source.count(body_end) == 1
    path = tmp_path / "hyperparams_with_recipe.py"
    path.write_text(source.replace(body_end, f"\n    {declaration}\n{body_end}"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, path.stem, module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def test_a_hyperparameter_declared_the_recipe_way_reaches_ultralytics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declaration = _recipe_declaration()
    name = declaration.split(":", 1)[0]
    argument = re.search(r'ultralytics="(\w+)"', declaration)
    assert argument and name not in hyperparams.Hyperparameters.field_names()  # a throwaway field
    module = _hyperparams_with(declaration, tmp_path, monkeypatch)

    # Checked where it is declared, from hyperparameters.json's strings as from Python values.
    hp = module.Hyperparameters.from_mapping({name: "0.25"}, source="hyperparameters.json")
    assert getattr(hp, name) == 0.25
    with pytest.raises(UserInputError, match=f"'{name}'"):
        module.Hyperparameters.from_mapping({name: "2"})

    # Passed on by the trainer under Ultralytics' name, and only when starting (not a host setting).
    plan = _Plan(
        hp=hp,
        augment=augment_config(hp.augment, hp.augment_overrides),
        data=DataSpec(tmp_path / "data.yaml", {0: "car"}, (), ()),
        device="cpu",
        precision="fp32",
        batch=4,
        run_dir=tmp_path / "run",
        store=CheckpointStore(tmp_path / "run" / "weights"),
    )
    args = _ultralytics_args(plan, None, None)
    assert args[argument.group(1)] == 0.25
    assert argument.group(1) not in _ultralytics_args(plan, None, tmp_path / "run" / "weights" / "last.pt")

    # Ultralytics takes the whole dict: it refuses names it does not know, so a misspelt one fails here.
    assert getattr(get_cfg(overrides=args), argument.group(1)) == 0.25
