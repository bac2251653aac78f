"""`notebooks/01-experiment.ipynb`: committed without outputs, as its builder writes it, and run top
to bottom by a real Jupyter kernel (this venv's Python) with small settings.

The kernel is registered in a temporary Jupyter path, so nothing is written to the user's home;
its process inherits the network guard (loopback ZMQ is all it uses). The two training runs start
from `trained_model_dir`'s weights so that the predictions the notebook draws are real boxes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01-experiment.ipynb"
BUILDER = ROOT / "notebooks" / "build_experiment_notebook.py"
KERNEL = "drone-yolo-test"


def _builder():
    spec = importlib.util.spec_from_file_location("build_experiment_notebook", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_is_committed_without_outputs_as_its_builder_writes_it() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert [c for c in code if "parameters" in c.metadata.get("tags", [])] == [code[0]]
    assert NOTEBOOK.read_text().rstrip("\n") == nbformat.writes(_builder().build()).rstrip("\n")


def _with_parameters(notebook: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
    """As papermill does: a cell after the `parameters` cell that sets the run's values."""
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    injected = nbformat.v4.new_code_cell(source, id="injected-parameters")
    notebook.cells.insert(index + 1, injected)
    return notebook


def _kernel_in(folder: Path) -> Path:
    """A kernelspec for this Python (ipykernel's own names `python`, whichever is first on PATH)."""
    spec_dir = folder / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "drone-yolo test venv",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return folder


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(
    trained_model_dir: Path,
    tmp_path: Path,
    guarded_subprocess_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbclient import NotebookClient

    jupyter = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_in(jupyter / "path")))
    for variable, sub in (
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("IPYTHONDIR", "ipython"),
    ):
        monkeypatch.setenv(variable, str(jupyter / sub))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the ONNX export's cache
    for variable in ("PYTHONPATH", "NETGUARD_REPORT"):  # the worktree's packages and the guard
        monkeypatch.setenv(variable, guarded_subprocess_env[variable])

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    parameters = {
        "FRAMES": 16,
        "IMGSZ": 160,
        "EPOCHS": 2,
        "WEIGHTS": str(trained_model_dir / "best.pt"),
        "WORK_DIR": str(run_dir / "experiment"),
        "LARGE_FRAME": (960, 540),
        "SLICE_SIZE": 160,
    }
    notebook = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), parameters)
    client = NotebookClient(
        notebook, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(run_dir)}}
    )
    client.execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "quarantined:" in text and "frame_truncated.jpg" in text
    assert "registered drone-yolo-dev version 1: PendingManualApproval" in text
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) >= 4  # scenes, run curves, predictions, sliced
    assert (run_dir / "experiment" / "mlflow.db").is_file() and not (run_dir / "mlruns").exists()
