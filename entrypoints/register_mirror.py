"""`register_mirror`: the MlflowMirror step: the registered model package's MLflow version.

Runs after RegisterModel, in SageMaker (a Processing job in the train image) and in the local
runner alike. Inputs: /opt/ml/processing/input/model (model.tar.gz, a folder holding it, or a model
folder) and /opt/ml/processing/input/evaluation/evaluation.json. Output:
/opt/ml/processing/output/mirror/mirror.json (model name, version, package ARN, MLflow run).
With `--tracking-uri none` there is no MLflow to mirror into: mirror.json says so and it exits 0.
Environment: GIT_COMMIT (the code commit recorded). The AWS region is the package ARN's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from entrypoints.contract import ProcessingPaths, image_commit, processing_message_file, run_main
from yolo_core.cli_args import Parser
from yolo_core.errors import UserInputError

MIRROR_FILE = "mirror.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paths = ProcessingPaths.from_env()
    parser = Parser(prog="register_mirror", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model-package-arn", required=True, help="the package the RegisterModel step created")
    add("--tracking-uri", required=True, help="MLflow URI, or none")
    add("--experiment", required=True, help="MLflow experiment of the register run")
    add("--input-data-uri", default="", help="the raw data the pipeline read (recorded)")
    add("--dataset-location", default="", help="where preprocess wrote the dataset (recorded)")
    add("--pipeline-execution", default="", help="the pipeline execution (default: the package's metadata)")
    add("--image", nargs=2, action="append", default=[], metavar=("NAME", "URI"), help="an image used")
    add("--model", type=Path, default=paths.input("model"), help="model folder or model.tar.gz")
    add("--evaluation", type=Path, default=paths.input("evaluation"), help="folder with evaluation.json")
    add("--output", type=Path, default=paths.output("mirror"), help=f"where {MIRROR_FILE} goes")
    args = list(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(args[1:] if args[:1] == ["register_mirror"] else args)


def _region(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "sagemaker" or not parts[3]:
        raise UserInputError(f"--model-package-arn: {arn!r} is not a SageMaker model package ARN")
    return parts[3]


def mirror(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    region = _region(args.model_package_arn)
    if args.tracking_uri.strip().lower() in ("", "none"):
        note = {"model_package_arn": args.model_package_arn, "skipped": "no MLflow tracking URI (none)"}
        (args.output / MIRROR_FILE).write_text(json.dumps(note, indent=2) + "\n")
        print(f"register_mirror: no MLflow configured; {args.model_package_arn} is not mirrored")
        return 0
    from mlflow import MlflowClient

    from pipeline.aws import AwsClients
    from pipeline.registry import Provenance
    from pipeline.registry_mirror import mirror_package
    from yolo_core.evaluation.artifact import resolve_model_dir
    from yolo_core.retry import apply_mlflow_http_policy

    aws = AwsClients(region)
    metadata = aws.sagemaker.describe_model_package(ModelPackageName=args.model_package_arn).get(
        "CustomerMetadataProperties", {}
    )
    provenance = Provenance(
        dataset_hash="",  # from the model card
        input_data_uri=args.input_data_uri,
        dataset_location=args.dataset_location,
        code_commit=image_commit(),
        images=dict(args.image),
        pipeline_run_id="",
        pipeline_execution=args.pipeline_execution or metadata.get("pipeline_execution_arn", ""),
    )
    apply_mlflow_http_policy()  # MLflow's HTTP client fails fast: mirror_package retries under TRACKING
    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mirror-model-") as scratch:
        model_dir = resolve_model_dir(args.model, Path(scratch))
        mirrored = mirror_package(
            client,
            aws.sagemaker,
            args.model_package_arn,
            model_dir,
            args.evaluation / "evaluation.json",
            args.experiment,
            provenance,
        )
    (args.output / MIRROR_FILE).write_text(mirrored.to_json())
    verb = "mirrored as" if mirrored.created else "already mirrored as"
    print(f"register_mirror: {mirrored.model_package_arn} {verb} {mirrored.name} version {mirrored.version}")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: mirror(argv), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
