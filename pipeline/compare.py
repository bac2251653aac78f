"""`python -m pipeline compare`: registered model versions side by side.

One column per version: its approval in MLflow and in the SageMaker registry, its evaluation
metrics, the data and code it came from (all from `ModelRegistry.lineage`, the one reader of a
version's record), and its hyperparameters, read from the model card registered with it (the
register run's `model/model.json`, else the card inside the package's model.tar.gz). Only the
hyperparameters that differ are shown unless asked for all; the best value of each metric is
starred.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.text_table import format_table
from yolo_core.cli_args import number
from yolo_core.errors import UserInputError
from yolo_core.retry import TRACKING, call_with_retry

CARD_ARTIFACT = "model/model.json"  # where registration logs the model folder (pipeline/registry.py)
_SHORT = 12  # characters of a hash or commit shown


def add_arguments(commands: Any, env_args: Callable, store_args: Callable, version_help: str) -> None:
    compare = commands.add_parser("compare", help="registered model versions side by side")
    env_args(compare)
    store_args(compare)
    compare.add_argument(
        "--versions",
        default="",
        help=f"comma-separated versions, each one of: {version_help} (default: the newest)",
    )
    compare.add_argument("--last", type=number(int, 1), default=5, help="without --versions: how many")
    compare.add_argument(
        "--all-hyperparameters", action="store_true", help="also the hyperparameters every version shares"
    )
    compare.add_argument("--json", action="store_true", help="print the versions as JSON")


@dataclass(frozen=True)
class VersionView:
    """What `compare` shows of one version."""

    version: str
    lineage: dict[str, Any]
    hyperparameters: dict[str, str]  # {} when no model card was found
    hyperparameters_from: str  # where they were read, or why not


def versions_to_compare(registry: Any, requested: str, last: int) -> list[str]:
    """The MLflow version numbers asked for, or the `last` newest."""
    if requested.strip():
        return [registry.resolve_version(item.strip()) for item in requested.split(",") if item.strip()]
    found = call_with_retry(registry.mlflow.search_model_versions, f"name='{registry.name}'", policy=TRACKING)
    if not found:
        raise UserInputError(f"model {registry.name!r} has no registered versions in this tracking store")
    return [str(n) for n in sorted(int(v.version) for v in found)[-last:]]


def _card_strings(card: dict[str, Any]) -> dict[str, str]:
    from yolo_core.hyperparams import Hyperparameters

    raw = card.get("hyperparameters") or {}
    try:
        return Hyperparameters.from_mapping(raw, source="model card").to_strings()
    except UserInputError:  # a card from an older version of the fields: shown as it is
        return {
            key: json.dumps(value) if isinstance(value, dict) else str(value) for key, value in raw.items()
        }


def _card_from_mlflow(registry: Any, run_id: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
        try:
            path = call_with_retry(
                registry.mlflow.download_artifacts, run_id, CARD_ARTIFACT, scratch, policy=TRACKING
            )
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())


def _card_from_package(registry: Any, model_data_url: str) -> dict[str, Any] | None:
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.artifacts import split_s3_uri

    if not model_data_url.startswith("s3://"):
        return None
    bucket, key = split_s3_uri(model_data_url)
    try:
        body = registry.aws.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with tarfile.open(fileobj=body, mode="r|gz") as archive:
            for member in archive:
                if member.name.lstrip("./") == "model.json" and member.isfile():
                    return json.loads(archive.extractfile(member).read())
    except (BotoCoreError, ClientError, tarfile.TarError, OSError):
        return None
    return None


def hyperparameters_of(registry: Any, lineage: dict[str, Any]) -> tuple[dict[str, str], str]:
    run_id = lineage["pipeline"]["mlflow_register_run_id"]
    card = _card_from_mlflow(registry, run_id) if run_id else None
    if card is not None:
        return _card_strings(card), f"MLflow run {run_id}"
    url = lineage["artifacts"]["model_data_url"]
    card = _card_from_package(registry, url)
    if card is not None:
        return _card_strings(card), url
    return {}, "no model card found"


def collect(registry: Any, versions: Sequence[str]) -> list[VersionView]:
    views = []
    for version in versions:
        lineage = registry.lineage(version)
        hyperparameters, source = hyperparameters_of(registry, lineage)
        views.append(VersionView(lineage["version"], lineage, hyperparameters, source))
    return views


def _short(text: str) -> str:
    return text[:_SHORT] if text else "-"


def _metric_cells(views: Sequence[VersionView], name: str) -> list[str]:
    values = [view.lineage["metrics"].get(name) for view in views]
    best = max((v for v in values if v is not None), default=None)
    starred = len([v for v in values if v is not None]) > 1
    return ["-" if v is None else f"{v:.4f}{' *' if starred and v == best else ''}" for v in values]


def comparison(
    views: Sequence[VersionView], all_hyperparameters: bool = False
) -> tuple[list[str], list[list[str]], int]:
    """Header, rows (a label, then one cell per version) and the count of equal hyperparameters left out."""
    header = ["version", *(view.version for view in views)]
    rows = [
        ["approval (MLflow)", *(v.lineage["approval"]["mlflow"] or "-" for v in views)],
        ["approval (SageMaker)", *(v.lineage["approval"]["sagemaker"] or "-" for v in views)],
    ]
    metrics = sorted({name for view in views for name in view.lineage["metrics"]})
    rows += [[f"metric {name}", *_metric_cells(views, name)] for name in metrics]
    rows += [
        ["dataset_hash", *(_short(v.lineage["data"]["dataset_hash"]) for v in views)],
        ["input_data_uri", *(v.lineage["data"]["input_data_uri"] or "-" for v in views)],
        ["code_commit", *(_short(v.lineage["code_commit"]) for v in views)],
        ["register run", *(_short(v.lineage["pipeline"]["mlflow_register_run_id"]) for v in views)],
    ]
    names = sorted({name for view in views for name in view.hyperparameters})
    equal = 0
    for name in names:
        cells = [view.hyperparameters.get(name, "?") if view.hyperparameters else "?" for view in views]
        if len(set(cells)) == 1 and not all_hyperparameters:
            equal += 1
            continue
        rows.append([f"hp {name}", *cells])
    return header, rows, equal


def run(args: argparse.Namespace, registry: Any) -> int:
    views = collect(registry, versions_to_compare(registry, args.versions, args.last))
    if args.json:
        document = [
            {
                "version": v.version,
                **v.lineage,
                "hyperparameters": v.hyperparameters,
                "hyperparameters_from": v.hyperparameters_from,
            }
            for v in views
        ]
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    header, rows, equal = comparison(views, args.all_hyperparameters)
    print(f"{registry.name}: {len(views)} version(s)")
    print(format_table(header, rows))
    if equal:
        print(f"({equal} hyperparameters are the same in every version; --all-hyperparameters shows them)")
    missing = [v.version for v in views if not v.hyperparameters]
    if missing:
        print(f"(no model card found for version(s) {', '.join(missing)}: their hyperparameters show as ?)")
    return 0
