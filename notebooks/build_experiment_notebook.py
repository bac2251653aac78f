"""Write `01-experiment.ipynb` from the cells below: one source of truth that a diff can review.

    .venv/bin/python notebooks/build_experiment_notebook.py   # rewrites the notebook, no outputs

The notebook is committed without outputs or execution counts (tests/test_notebook.py checks
that, and that this script reproduces it), and CI runs it top to bottom with small parameters.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "01-experiment.ipynb"
PARAMETERS_TAG = "parameters"  # papermill's convention: the cell whose values a run may override

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """# Step 1: experiment

Make or load drone scenes and look at their boxes, preprocess them and read the quality report,
train two small models with the core, compare the runs in MLflow, look at predictions (whole frames
and sliced), and register the best run. Everything runs on this machine, offline; the registration
goes to MLflow and to a local stand-in of SageMaker's model registry (`USE_MOTO`).

Run it from the repository's virtual environment (`.venv/bin/jupyter lab` after
`.venv/bin/python -m pip install jupyterlab`, or any Jupyter that uses that Python). The next cell
holds the settings; CI runs the notebook with smaller ones. Afterwards:
`python -m pipeline compare --env dev --work-dir notebooks/experiment` (from the repository root)
shows the registered version, and
`python -m pipeline tune --local` searches hyperparameters the same way with Optuna.""",
    ),
    (
        "parameters",
        """DATA_DIR = ""  # a VisDrone, COCO or YOLO folder; "" makes synthetic drone scenes
DATA_FORMAT = "visdrone"  # visdrone, coco or yolo
FRAMES = 48  # synthetic frames
FRAME_SIZE = 320  # synthetic frame width and height
IMGSZ = 320  # training image size
EPOCHS = 40  # per run: ~2-4 s an epoch on two CPU cores at these sizes
WEIGHTS = ""  # optional starting weights (.pt) for both runs
WORK_DIR = "experiment"  # where everything is written (its mlflow.db is `--work-dir` for the CLI)
LARGE_FRAME = (1920, 1080)  # width, height of the frame for sliced inference
SLICE_SIZE = 320  # tile size of sliced inference
USE_MOTO = True  # register in a local stand-in of SageMaker (False: your AWS account)
ENV = "dev"  # pipeline/config/<ENV>.yaml: model package group, bucket, images""",
    ),
    (
        "code",
        """import json
from contextlib import ExitStack
from pathlib import Path

from entrypoints.environment import configure_offline

configure_offline()  # before Ultralytics loads: no downloads, and every CPU core

import cv2
import matplotlib.pyplot as plt
import mlflow
from matplotlib import patches

from pipeline.tracking import PipelineTracking, default_tracking_uri

work = Path(WORK_DIR).resolve()
work.mkdir(parents=True, exist_ok=True)
tracking_uri = default_tracking_uri(work)  # the store `python -m pipeline ... --work-dir` reads
mlflow.set_tracking_uri(tracking_uri)
EXPERIMENT = "notebook"
# Created here so that its artifacts live under the work folder (MLflow's default is ./mlruns).
PipelineTracking(tracking_uri, EXPERIMENT, work / "mlflow-artifacts").experiment_id()


def draw(ax, image_bgr, boxes, labels, title, color="lime"):
    \"\"\"An image with its boxes (xyxy pixels) and a label on each.\"\"\"
    ax.imshow(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    for (x0, y0, x1, y1), label in zip(boxes, labels):
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=1))
        ax.text(x0, y0 - 2, label, color=color, fontsize=6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")""",
    ),
    (
        "markdown",
        """## 1. Drone scenes and their boxes

Synthetic scenes (`yolo_core.data.synthetic`) are top-down frames in the VisDrone-DET layout, with
small objects, shadows, trees that hide some of them and dense crowds marked as ignored regions
(drawn in red). With `DATA_DIR` set, your own VisDrone frames are shown instead.""",
    ),
    (
        "code",
        """from yolo_core.data.synthetic import generate_scenes
from yolo_core.data.visdrone import parse_annotation_file
from yolo_core.data.visdrone_classes import NAMES

if DATA_DIR:
    raw = Path(DATA_DIR)
else:
    raw = generate_scenes(work / "raw", FRAMES, seed=7, width=FRAME_SIZE, height=FRAME_SIZE, object_px=(14, 48))
    # One truncated frame, so that the quality report below has something to find.
    frame = sorted((raw / "images").glob("*.jpg"))[0]
    (raw / "images" / "frame_truncated.jpg").write_bytes(frame.read_bytes()[:2000])
    annotations = raw / "annotations"
    (annotations / "frame_truncated.txt").write_text((annotations / f"{frame.stem}.txt").read_text())

if DATA_FORMAT == "visdrone":
    frames = sorted((raw / "images").glob("*.jpg"))[:4]
    fig, axes = plt.subplots(1, len(frames), figsize=(4 * len(frames), 4), squeeze=False)
    for ax, path in zip(axes[0], frames):
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        labels = parse_annotation_file(raw / "annotations" / f"{path.stem}.txt", path.name, width, height)
        names = [NAMES[c] for c in labels.classes]
        draw(ax, image, labels.boxes, names, f"{path.name}: {len(labels.boxes)} objects")
        for x0, y0, x1, y1 in labels.ignored:
            ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="red", ls="--"))
    plt.show()""",
    ),
    (
        "markdown",
        """## 2. Preprocess and its quality report

`build_dataset` is what the pipeline's Preprocess step runs: it converts to the YOLO layout, checks
every image and label (bad ones are quarantined and listed, with file and line), splits by a hash
of each frame, and writes the statistics baseline the drift monitor compares traffic with.""",
    ),
    (
        "code",
        """from yolo_core.data.dataset import build_dataset

dataset = build_dataset(raw, work / "dataset", DATA_FORMAT, seed=7, progress=False)
report = json.loads(dataset.report_path.read_text())
print(f"dataset {dataset.root} (hash {dataset.dataset_hash[:12]}): {dataset.train_images} train, "
      f"{dataset.val_images} val images, {dataset.boxes} boxes, classes {list(dataset.names.values())}")
print(f"quality: passed={report['passed']}, {report['images_kept']} of {report['images_seen']} images kept, "
      f"bad fraction {report['bad_fraction']:.1%} (max {report['max_bad_fraction']:.0%})")
print("issues by kind:", report["issue_counts"])
for item in report["quarantined"]:
    print("  quarantined:", item["file"], "-", ", ".join(item["reasons"]))""",
    ),
    (
        "markdown",
        """## 3. Train two small models with the core

`yolo_core.train.trainer.train` is the call the training container makes. Each run logs its
parameters, per-epoch metrics and artifacts to MLflow (here a sqlite store in the work folder).
The two runs differ in optimizer and learning rate; `nbs=8` makes every batch an optimizer step,
which is what a few dozen images need to learn from scratch.""",
    ),
    (
        "code",
        """from yolo_core.hyperparams import Hyperparameters
from yolo_core.train.trainer import TrainingJob, train

RUNS = {"sgd": {"optimizer": "SGD", "lr0": 0.01}, "adamw": {"optimizer": "AdamW", "lr0": 0.002}}
outcomes = {}
for name, settings in RUNS.items():
    hyperparameters = Hyperparameters(
        epochs=EPOCHS, imgsz=IMGSZ, batch=8, nbs=8, warmup_epochs=1, plots=False, seed=0,
        tracking_uri=tracking_uri, experiment_name=EXPERIMENT, run_name=name, **settings,
    )
    job = TrainingJob(
        data_yaml=dataset.data_yaml,
        checkpoint_dir=work / "runs" / name / "checkpoints",
        model_dir=work / "runs" / name / "model",
        hyperparameters=hyperparameters,
        weights=Path(WEIGHTS) if WEIGHTS else None,
        handle_signals=False,
    )
    outcomes[name] = train(job)
    print(name, outcomes[name].card.metrics)""",
    ),
    (
        "markdown",
        """## 4. Compare the runs in MLflow

The table is MLflow's own search over the experiment; the plot reads each run's metric history.
`mlflow ui --backend-store-uri sqlite:///experiment/mlflow.db` shows the same.""",
    ),
    (
        "code",
        """best_first = ["metrics.`final/mAP50-95` DESC"]
runs = mlflow.search_runs(experiment_names=[EXPERIMENT], order_by=best_first)
columns = ["tags.mlflow.runName", "params.optimizer", "params.lr0", "metrics.final/mAP50",
           "metrics.final/mAP50-95", "metrics.final/precision", "metrics.final/recall", "run_id"]
runs[columns]""",
    ),
    (
        "code",
        """client = mlflow.MlflowClient(tracking_uri)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, metric in zip(axes, ["metrics/mAP50-95B", "train/box_loss"]):
    for _, run in runs.iterrows():
        history = sorted(client.get_metric_history(run.run_id, metric), key=lambda m: m.step)
        steps, values = [m.step for m in history], [m.value for m in history]
        ax.plot(steps, values, marker="o", label=run["tags.mlflow.runName"])
    ax.set_title(metric)
    ax.set_xlabel("epoch")
    ax.legend()
plt.show()""",
    ),
    (
        "markdown",
        """## 5. Predictions on validation frames

`Predictor` is the inference path behind evaluation and the server (batched, boxes in source
pixels). Predictions are drawn in green, the labels in white.""",
    ),
    (
        "code",
        """from yolo_core.evaluation.ground_truth import label_file_for, load_split, read_labels
from yolo_core.infer.predictor import Predictor

best_name = runs.iloc[0]["tags.mlflow.runName"]
best = outcomes[best_name]
predictor = Predictor.from_model_dir(best.model_dir)
split = load_split(dataset.root, "val")
files = split.image_files[:4]
images = [cv2.imread(str(f)) for f in files]
fig, axes = plt.subplots(1, len(files), figsize=(4 * len(files), 4), squeeze=False)
for ax, file, image, found in zip(axes[0], files, images, predictor.predict(images, conf=0.25)):
    truth = read_labels(label_file_for(file), image.shape[1], image.shape[0], len(split.names))
    draw(ax, image, truth.boxes, [""] * len(truth.boxes), "", color="white")
    labels = [f"{split.names[int(c)]} {s:.2f}" for c, s in zip(found.class_ids, found.scores)]
    draw(ax, image, found.boxes, labels, f"{best_name}: {len(found)} found, {len(truth.boxes)} labelled")
plt.show()""",
    ),
    (
        "markdown",
        """## 6. Sliced inference on a large frame

A large frame shrunk to the model's input size loses small objects; `predict_sliced` runs the model
over overlapping tiles at full resolution and merges the boxes across tiles.""",
    ),
    (
        "code",
        """from yolo_core.infer.sliced import predict_sliced

width, height = LARGE_FRAME
large_dir = generate_scenes(work / "large", 1, seed=99, width=width, height=height, object_px=(14, 48))
large = cv2.imread(str(sorted((large_dir / "images").glob("*.jpg"))[0]))
(whole,) = predictor.predict([large], conf=0.25)
(sliced,) = predict_sliced(predictor, [large], slice_size=SLICE_SIZE, overlap=0.2, conf=0.25)
fig, axes = plt.subplots(1, 2, figsize=(14, 4))
draw(axes[0], large, whole.boxes, [""] * len(whole), f"whole frame at {IMGSZ} px: {len(whole)} boxes")
draw(axes[1], large, sliced.boxes, [""] * len(sliced), f"{SLICE_SIZE} px tiles: {len(sliced)} boxes")
plt.show()""",
    ),
    (
        "markdown",
        """## 7. Register the best run

The best run is evaluated as the pipeline's Evaluate step does (`evaluation.json`), then registered
on both sides of the registry: an MLflow model version and a SageMaker model package, pending
approval, each naming the other, with the data, code and evaluation behind it.""",
    ),
    (
        "code",
        """from pipeline.aws import AwsClients, refuse_placeholder_account
from pipeline.compare import collect, comparison
from pipeline.config import load_config
from pipeline.local_aws import use_moto
from pipeline.registry import ModelRegistry, Provenance
from pipeline.text_table import format_table
from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_model
from yolo_core.version import git_commit

evaluation = evaluate_model(best.model_dir, dataset.root, work / "evaluation", EvaluationSettings())
print({name: entry["value"] for name, entry in evaluation["metrics"].items()})
config = load_config(ENV)
with ExitStack() as stack:
    if USE_MOTO:
        stack.enter_context(use_moto(work, config.region))
    refuse_placeholder_account(config, "notebook registration")
    aws = AwsClients(config.region)
    if USE_MOTO:
        aws.ensure_bucket(config.bucket)
    registry = ModelRegistry(config, tracking_uri, aws, work / "registry-audit.jsonl")
    provenance = Provenance(
        dataset_hash=dataset.dataset_hash,
        input_data_uri=str(raw),
        dataset_location=str(dataset.root),
        code_commit=git_commit(),
        images={image: config.images.uri(image) for image in ("train", "inference")},
        pipeline_run_id="",
    )
    evaluation_file = work / "evaluation" / "evaluation.json"
    registered = registry.register(best.model_dir, evaluation_file, best.mlflow_run_id, provenance)
    print(f"registered {registered.name} version {registered.version}: {registered.status}")
    header, rows, _ = comparison(collect(registry, [registered.version]))
    print(format_table(header, rows))""",
    ),
]


def build() -> nbformat.NotebookNode:
    cells = []
    for index, (kind, source) in enumerate(CELLS):
        cell_id = f"cell-{index:02d}"  # fixed ids: the file is the same every time it is built
        if kind == "markdown":
            cells.append(new_markdown_cell(source, id=cell_id))
        else:
            tags = [PARAMETERS_TAG] if kind == "parameters" else []
            cells.append(new_code_cell(source, id=cell_id, metadata={"tags": tags} if tags else {}))
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )


def main() -> None:
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
