"""`feature_store`: the FeatureStore step: preprocess's image statistics as feature-store records.

Runs beside training, in SageMaker (a Processing job in the preprocess image) and in the local
runner alike. Inputs: /opt/ml/processing/input/baseline/baseline.json and
/opt/ml/processing/input/manifest/dataset.json (for the dataset hash). Output:
/opt/ml/processing/output/features/ (image_stats.parquet, class_stats.parquet, features.json).
With `--feature-group` the image records also go to that feature group's S3 offline store (the
group is created if missing); without it only the Parquet files are written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrypoints.contract import ProcessingPaths, processing_message_file, read_json_file, run_main
from yolo_core.cli_args import Parser
from yolo_core.errors import UserInputError

SUMMARY_FILE = "features.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paths = ProcessingPaths.from_env()
    parser = Parser(prog="feature_store", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--baseline", type=Path, default=paths.input("baseline"), help="folder with baseline.json")
    add("--manifest", type=Path, default=paths.input("manifest"), help="folder with dataset.json")
    add("--output", type=Path, default=paths.output("features"), help="where the Parquet files go")
    add("--feature-group", default="", help="feature group for the offline store ('' : Parquet only)")
    add("--offline-store-uri", default="", help="s3:// prefix of the offline store (with --feature-group)")
    add("--role-arn", default="", help="role the feature group writes its offline store with")
    add("--region", default="", help="AWS region (default: the environment's)")
    args = list(sys.argv[1:] if argv is None else argv)
    parsed = parser.parse_args(args[1:] if args[:1] == ["feature_store"] else args)
    if parsed.feature_group and not (parsed.offline_store_uri and parsed.role_arn):
        parser.error("--feature-group needs --offline-store-uri and --role-arn")
    return parsed


def write_features(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline.feature_store import FeatureGroupSpec, write_feature_files, write_offline_store

    manifest = read_json_file(args.manifest / "dataset.json", "dataset.json")
    dataset_hash = str(manifest.get("dataset_hash", ""))
    if not dataset_hash:
        raise UserInputError(f"{args.manifest / 'dataset.json'}: field 'dataset_hash' is missing")
    files = write_feature_files(args.baseline / "baseline.json", dataset_hash, args.output)
    summary = {"dataset_hash": dataset_hash, "image_records": files.image_count}
    if args.feature_group:
        from pipeline.aws import AwsClients

        aws = AwsClients(args.region or _default_region())
        spec = FeatureGroupSpec(args.feature_group, args.offline_store_uri, args.role_arn)
        written = write_offline_store(spec, files, dataset_hash, aws.sagemaker, aws.s3)
        summary |= {"feature_group": written.feature_group_arn, "offline_store_images": written.images_uri}
    (args.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"feature_store: {files.image_count} image records of dataset {dataset_hash[:12]}: {summary}")
    return 0


def _default_region() -> str:
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise UserInputError("--region: no AWS region set (AWS_REGION or AWS_DEFAULT_REGION)")
    return region


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: write_features(argv), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
