"""The multi-host launch decided from resourceconfig.json, and the host's exit from its workers'
reports: pure functions, no process started (tests/test_train_distributed.py runs the real thing)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from entrypoints import distributed
from entrypoints.contract import TrainingPaths
from yolo_core.errors import UserInputError
from yolo_core.train.devices import check_batch_for_ranks
from yolo_core.train.distributed import DistributedSpec

TWELVE = [f"algo-{i}" for i in (10, 2, 1, 12, 3, 11, 4, 5, 6, 7, 8, 9)]


def test_hosts_are_in_natural_order_so_algo_2_comes_before_algo_10() -> None:
    assert sorted(["algo-10", "algo-2", "algo-1"]) == ["algo-1", "algo-10", "algo-2"]  # what to avoid
    assert distributed.ordered_hosts(["algo-10", "algo-2", "algo-1"]) == ["algo-1", "algo-2", "algo-10"]
    assert distributed.ordered_hosts(TWELVE) == [f"algo-{i}" for i in range(1, 13)]


def test_the_plan_on_a_gpu_host() -> None:
    config = {"current_host": "algo-10", "hosts": TWELVE, "network_interface_name": "eth0"}
    plan = distributed.launch_plan(config, gpus=8)
    assert (plan.node_rank, plan.nnodes, plan.nproc_per_node, plan.world_size) == (9, 12, 8, 96)
    assert (plan.leader, plan.master_addr, plan.master_port) == ("algo-1", "algo-1", 7777)
    assert plan.backend == "nccl"
    assert not plan.is_leader
    assert plan.environment() == {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"}
    command = plan.command("python")
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    for flag in (
        "--nnodes=12",
        "--nproc-per-node=8",
        "--node-rank=9",
        "--master-addr=algo-1",
        "--master-port=7777",
        "--max-restarts=0",  # a failure ends the job; SageMaker (spot) restarts it whole
        f"--rdzv-conf=timeout={distributed.RENDEZVOUS_TIMEOUT_S}",  # bounded: never a hang
    ):
        assert flag in command
    assert command[-4:] == ["-m", "entrypoints.train", "--worker", "--backend=nccl"]


def test_the_plan_on_a_cpu_host_and_the_local_overrides() -> None:
    config = {"current_host": "algo-1", "hosts": ["algo-2", "algo-1"]}
    plan = distributed.launch_plan(config, gpus=0)
    assert (plan.node_rank, plan.nproc_per_node, plan.backend, plan.is_leader) == (0, 1, "gloo", True)
    assert plan.environment() == {}  # no interface named: NCCL and gloo choose
    env = {
        distributed.MASTER_ADDR_ENV: "127.0.0.1",
        distributed.MASTER_PORT_ENV: "29123",
        distributed.RENDEZVOUS_TIMEOUT_ENV: "30",
    }
    local = distributed.plan_from_env(config, 0, env)
    assert (local.master_addr, local.master_port, local.rendezvous_timeout_s) == ("127.0.0.1", 29123, 30)
    assert distributed.plan_from_env(config, 0, {}).master_addr == "algo-1"


def test_a_resource_config_that_does_not_name_this_host_is_refused() -> None:
    with pytest.raises(UserInputError, match="current_host 'algo-3' is not one of hosts"):
        distributed.launch_plan({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, 0)
    with pytest.raises(UserInputError, match="'hosts' is empty"):
        distributed.launch_plan({"current_host": "algo-1", "hosts": []}, 0)
    with pytest.raises(UserInputError, match="TRAIN_MASTER_PORT"):
        one_host = {"current_host": "algo-1", "hosts": ["algo-1"]}
        distributed.plan_from_env(one_host, 0, {distributed.MASTER_PORT_ENV: "?"})


def test_a_host_exits_as_its_first_failing_worker_says() -> None:
    interrupted = "training interrupted by SIGTERM in epoch 2; checkpoint epoch-0001.partial.pt saved"
    ok = distributed.launch_result([(0, "", True), (0, "", True)], 0, "", None)
    assert (ok.exit_code, ok.reason, ok.trained) == (0, "", True)
    reports = [(0, "", True), (143, interrupted, False)]
    stopped = distributed.launch_result(reports, 1, "ChildFailedError: x", None)
    assert (stopped.exit_code, stopped.reason) == (143, interrupted)
    crashed = distributed.launch_result([(1, "RuntimeError: boom", False)], 1, "", None)
    assert (crashed.exit_code, crashed.reason) == (1, "RuntimeError: boom")


def test_a_host_whose_workers_never_reported_says_why() -> None:
    error = "torch.distributed.DistStoreError: Timed out after 31 seconds waiting for clients. 1/2 joined."
    failed = distributed.launch_result([(None, "", False)], 1, error, None)
    assert failed.exit_code == 1 and failed.reason.endswith(error) and "torchrun exit 1" in failed.reason
    killed = distributed.launch_result([(None, "", False)], 1, "", signal.SIGTERM)
    assert killed.exit_code == 143 and "SIGTERM" in killed.reason


def test_worker_reports_round_trip(tmp_path: Path) -> None:
    paths = TrainingPaths(tmp_path)
    distributed.write_status(paths, 0, 0, trained=True)
    distributed.failure_file(paths, 1).write_text("RuntimeError: boom\n")  # what run_main leaves
    assert distributed._worker_report(paths, 0) == (0, "", True)
    assert distributed._worker_report(paths, 1) == (1, "RuntimeError: boom", False)
    assert distributed._worker_report(paths, 2) == (None, "", False)


def test_worker_identity_comes_from_torchrun_only() -> None:
    me = distributed.worker_identity({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (me.rank, me.local_rank, me.world_size) == (3, 1, 4)
    with pytest.raises(UserInputError, match="only torchrun starts workers"):
        distributed.worker_identity({})


def test_rank_spec_and_batch_checks() -> None:
    assert DistributedSpec(1, 0, 2, "gloo").is_leader is False
    with pytest.raises(ValueError, match="rank 2"):
        DistributedSpec(2, 0, 2, "gloo")
    with pytest.raises(ValueError, match="backend"):
        DistributedSpec(0, 0, 2, "mpi")
    check_batch_for_ranks(8, 2)
    check_batch_for_ranks(-1, 1)  # one process: Ultralytics sizes the batch itself
    for batch in (-1, 7):
        with pytest.raises(UserInputError, match="does not split over 2 processes"):
            check_batch_for_ranks(batch, 2)
