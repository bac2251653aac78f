"""Training across two hosts, end to end through the real `train` command: two subprocesses on
this CPU (gloo over loopback), each with its own /opt/ml tree and a resourceconfig.json naming
both, as SageMaker lays out a two-instance job. Each launches torchrun; the ranks train together.

- Parameters are identical across ranks after training (each rank logs its digest).
- SIGTERM to one host mid-epoch stops both ranks at the same step, each exits as the spot contract
  says; only the leader wrote checkpoints. Both started again resume from the leader's checkpoint
  (the follower's own folder is empty: the leader sends it) and finish.
- The model lands in the leader's /opt/ml/model only.
- Final metrics of the 2-process run agree with the 1-process run of the same job.
- A leader whose follower never comes fails with a one-line reason instead of waiting forever.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints import distributed
from entrypoints.contract import TrainingPaths, write_training_config
from tests.train_support import kill_tree, start_train, wait_until
from yolo_core.model_card import ModelCard

EPOCHS = 3
HOSTS = ("algo-1", "algo-2")  # the leader, in natural order, and the follower
HYPERPARAMETERS = {  # strings, as SageMaker writes them
    "epochs": str(EPOCHS),
    "imgsz": "160",
    "batch": "4",  # 2 images per rank: ~10 steps an epoch, so the signal lands inside one
    "nbs": "4",
    "warmup_epochs": "1",
    "val": "false",  # the last epoch is validated all the same
    "plots": "false",
    "threads": "1",  # two "hosts" share this machine's cores
    "experiment_name": "multi-host-test",
}
_DIGEST = re.compile(r"rank (\d): parameters sha256 ([0-9a-f]{64})")
_STOP = re.compile(r"rank (\d) stops in epoch (\d+) after batch (\d+)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic 160 px frames (about 19 to train on), preprocessed as the pipeline does."""
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    root = tmp_path_factory.mktemp("tiny")
    raw = generate_scenes(root / "raw", 24, seed=11, width=160, height=160, object_px=(8, 28))
    return build_dataset(raw, root / "dataset", "visdrone", seed=11, progress=False).root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def host_trees(root: Path, dataset: Path, hyperparameters: dict[str, str]) -> dict[str, Path]:
    """One /opt/ml per host: the contract's config files, the dataset channel, and the
    resourceconfig.json SageMaker writes on each host of the job (interface `lo` here)."""
    trees = {}
    for host in HOSTS:
        training = TrainingPaths(root / host / "opt" / "ml")
        write_training_config(training, hyperparameters, ["dataset"])
        resources = {"current_host": host, "hosts": list(HOSTS), "network_interface_name": "lo"}
        training.resource_config_file.write_text(json.dumps(resources))
        shutil.copytree(dataset, training.channel("dataset"))
        trees[host] = training.base
    return trees


def host_env(env: dict[str, str], rendezvous_timeout_s: int = 180) -> dict[str, str]:
    """The hosts' names do not resolve here: the leader is on loopback, on a free port."""
    return {
        **env,
        distributed.MASTER_ADDR_ENV: "127.0.0.1",
        distributed.MASTER_PORT_ENV: str(_free_port()),
        distributed.RENDEZVOUS_TIMEOUT_ENV: str(rendezvous_timeout_s),
    }


class Hosts:
    """The `train` processes of one start of the job, one per host, and their logs."""

    def __init__(self, trees: dict[str, Path], env: dict[str, str], logs: Path, label: str) -> None:
        self.logs = {host: logs / f"{label}-{host}.log" for host in trees}
        self.processes = {host: start_train(trees[host], env, self.logs[host]) for host in trees}

    def log(self, host: str) -> str:
        return self.logs[host].read_text()

    def wait(self, timeout_s: float = 600) -> dict[str, int]:
        codes = {}
        for host, process in self.processes.items():
            try:
                codes[host] = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"{host} did not exit in {timeout_s} s:\n{self.log(host)[-3000:]}")
        return codes

    def kill(self) -> None:
        for process in self.processes.values():
            kill_tree(process)

    def tails(self) -> str:
        return "\n".join(f"--- {host}\n{self.log(host)[-3000:]}" for host in self.logs)


@pytest.fixture
def start_hosts(tmp_path: Path) -> Iterator:
    started: list[Hosts] = []

    def start(trees: dict[str, Path], env: dict[str, str], label: str) -> Hosts:
        started.append(Hosts(trees, env, tmp_path, label))
        return started[-1]

    yield start
    for hosts in started:  # a failed test leaves no torchrun or worker behind
        hosts.kill()


def digests(log: str) -> dict[int, str]:
    return {int(rank): digest for rank, digest in _DIGEST.findall(log)}


def test_two_hosts_train_together_stop_together_and_resume_from_the_leader(
    tiny_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str], start_hosts
) -> None:
    trees = host_trees(tmp_path, tiny_dataset, HYPERPARAMETERS)
    leader, follower = (TrainingPaths(trees[host]) for host in HOSTS)
    env = host_env(guarded_subprocess_env)

    first = start_hosts(trees, env, "first")
    epoch_one = leader.checkpoint_dir / "run" / "weights" / "epoch-0001.pt"
    wait_until(epoch_one.exists, epoch_one.name, first.processes["algo-1"], first.logs["algo-1"], 600)
    marker = "epoch 2: first batch done"  # the follower is into epoch 2's batches
    wait_until(
        lambda: marker in first.log("algo-2"), marker, first.processes["algo-2"], first.logs["algo-2"], 300
    )
    first.processes["algo-2"].send_signal(signal.SIGTERM)  # SageMaker signals one host first
    codes = first.wait()
    assert codes == {"algo-1": 143, "algo-2": 143}, first.tails()

    # Both ranks stopped at the same step, and both hosts report the same one line.
    stops = {host: _STOP.findall(first.log(host)) for host in HOSTS}
    assert len(stops["algo-1"]) == len(stops["algo-2"]) == 1, first.tails()
    assert stops["algo-1"][0][1:] == stops["algo-2"][0][1:], stops
    failures = {host: TrainingPaths(trees[host]).failure_file.read_text() for host in HOSTS}
    assert failures["algo-1"] == failures["algo-2"] and failures["algo-1"].count("\n") == 1
    assert "training interrupted by SIGTERM in epoch" in failures["algo-1"]
    saved = re.search(r"checkpoint (epoch-\d{4}(?:\.partial)?\.pt) saved", failures["algo-1"])
    assert saved, failures
    assert (leader.checkpoint_dir / "run" / "weights" / saved.group(1)).exists()
    assert not [p for p in follower.checkpoint_dir.rglob("*") if p.is_file()]  # the leader's alone
    for tree in (leader, follower):
        assert not (tree.model_dir / "best.pt").exists()

    second = start_hosts(trees, env, "second")
    assert second.wait() == {"algo-1": 0, "algo-2": 0}, second.tails()
    assert re.search(rf"resuming from \S+/run/weights/{re.escape(saved.group(1))}", second.log("algo-1"))
    assert f"rank 1: resuming from the leader's {saved.group(1)}" in second.log("algo-2")
    assert "train: trained; 3 epochs" in second.log("algo-1")
    assert "the leader algo-1 exports the model" in second.log("algo-2")

    # Identical parameters on both ranks at the end (each checked the other's too).
    leader_digests, follower_digests = digests(second.log("algo-1")), digests(second.log("algo-2"))
    assert set(leader_digests) == {0} and set(follower_digests) == {1}
    assert leader_digests[0] == follower_digests[1]

    # The model, on the leader only; one run of three epochs, resumed once, tracked once.
    card = ModelCard.load(leader.model_dir)
    assert (leader.model_dir / "best.pt").stat().st_size > 1_000_000
    assert card.extra["epochs_completed"] == EPOCHS and card.extra["resumes"] == 1
    assert card.extra["world_size"] == 2 and set(card.metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    assert not list(follower.model_dir.iterdir())
    assert not [p for p in follower.checkpoint_dir.rglob("*") if p.is_file()]
    with (leader.checkpoint_dir / "run" / "results.csv").open() as handle:
        assert [int(float(row["epoch"])) for row in csv.DictReader(handle)] == [1, 2, 3]
    _check_one_finished_run(leader.checkpoint_dir / "mlflow", card.extra["mlflow_run_id"])


def _check_one_finished_run(store: Path, run_id: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("multi-host-test").experiment_id])
    assert [run.info.run_id for run in runs] == [run_id]
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["resumes"] == "1"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "train/box_loss"))
    assert steps == [1, 2, 3]  # each epoch logged once, by the leader
    assert {a.path for a in client.list_artifacts(run_id, "model")} == {"model/best.pt", "model/model.json"}


# |2 processes - 1 process| allowed for the final val metrics of the same 40-epoch job (same data,
# seed, precision). Two ranks see other batch-norm statistics (half the batch each), other
# augmentation draws and another order of images, so a 2-process run is like another seed.
# Measured here (fp32, 2-core Xeon; benchmarks/RESULTS.md), 2-proc minus 1-proc for seeds 0, 1, 2:
# mAP50 -0.033, +0.018, -0.130; mAP50-95 -0.015, -0.006, -0.039; the widest pair across seeds
# (any 1-proc run against any 2-proc run) 0.130 and 0.072. The tolerance covers that with a margin.
AGREEMENT_TOLERANCE = {"mAP50": 0.20, "mAP50-95": 0.10}


def test_two_processes_learn_what_one_process_learns(
    synthetic_dataset: Path,
    trained_model_dir: Path,
    tmp_path: Path,
    guarded_subprocess_env: dict[str, str],
    start_hosts,
) -> None:
    """The session's 1-process run (tests/fixtures_data.py) against the same job on two hosts."""
    from tests.fixtures_data import LEARNING_HYPERPARAMETERS
    from yolo_core.hyperparams import Hyperparameters

    alone = ModelCard.load(trained_model_dir)
    job = Hyperparameters(**LEARNING_HYPERPARAMETERS).to_strings()
    job |= {"threads": "1", "precision": alone.extra["precision"], "experiment_name": "agreement-test"}
    trees = host_trees(tmp_path, synthetic_dataset, job)
    hosts = start_hosts(trees, host_env(guarded_subprocess_env), "agreement")
    assert hosts.wait(timeout_s=1200) == {"algo-1": 0, "algo-2": 0}, hosts.tails()
    together = ModelCard.load(TrainingPaths(trees["algo-1"]).model_dir)
    assert together.extra["world_size"] == 2
    assert together.extra["epochs_completed"] == alone.extra["epochs_completed"]
    for metric, tolerance in AGREEMENT_TOLERANCE.items():
        difference = together.metrics[metric] - alone.metrics[metric]
        assert abs(difference) <= tolerance, (metric, together.metrics, alone.metrics)


def test_a_leader_whose_follower_never_comes_fails_instead_of_waiting(
    tiny_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    trees = host_trees(tmp_path, tiny_dataset, HYPERPARAMETERS)
    log = tmp_path / "leader.log"
    process = start_train(trees["algo-1"], host_env(guarded_subprocess_env, rendezvous_timeout_s=5), log)
    try:
        code = process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        raise
    failure = TrainingPaths(trees["algo-1"]).failure_file.read_text()
    assert code != 0, log.read_text()[-3000:]
    assert failure.count("\n") == 1 and failure.startswith("distributed launch failed (torchrun exit 1)")
    assert "1/2" in failure, failure  # torchrun's own words: one of two hosts joined
