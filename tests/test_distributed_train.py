"""Data-parallel training (model/distributed.py): ``torchrun`` with 2 CPU processes trains a
tiny model and writes one valid model directory, deterministically; one process is the
single-process code path byte for byte; BatchNorm statistics are those of the whole batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnfpga.model.artifact import load_artifact
from tests.cli_common import cli, last_json

TRAIN = ["train", "--preset", "tiny", "--epochs", "1", "--finetune-epochs", "1", "--seed", "5", "--no-progress",
         "--json"]
FILES = ("manifest.json", "arrays.npz", "checkpoint.pt", "training.json")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """400 images of the bundled data: 350 to train on, 50 to validate."""
    from snnfpga.model.data import load_dataset

    d = load_dataset("default")
    path = tmp_path_factory.mktemp("dist") / "d400.npz"
    np.savez(path, images=d.images[:400], labels=d.labels[:400])
    return path


def torchrun(nproc: int, *args, timeout=300) -> subprocess.CompletedProcess:
    run = Path(sys.executable).with_name("torchrun")
    command = [str(run)] if run.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, "--nproc-per-node", str(nproc), "--master-port", str(free_port()),
                           "-m", "snnfpga", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same_files(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in FILES)


def test_torchrun_with_two_processes_writes_one_valid_model_deterministically(data, tmp_path):
    first = torchrun(2, *TRAIN, "--data", data, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count('"val_accuracy_int"') == 1  # rank 0 alone reports
    assert "2 processes" in first.stdout
    art = load_artifact(tmp_path / "a")
    assert art.sizes == [784, 128, 10]
    info = json.loads((tmp_path / "a" / "training.json").read_text())
    assert info["data_parallel"]["world_size"] == 2 and info["data_parallel"]["backend"] == "gloo"
    assert info["data_parallel"]["local_batch_size"] * 2 >= info["config"]["batch_size"]
    assert info["integer_model_matches_reference"] and info["val_accuracy_int"] == last_json(first.stdout)["val_accuracy_int"]
    # The same world size and seed: the same bytes.
    second = torchrun(2, *TRAIN, "--data", data, "--out", tmp_path / "b")
    assert second.returncode == 0, second.stderr[-3000:]
    assert same_files(tmp_path / "a", tmp_path / "b")
    # ... and not the single-process model (the batches are dealt out to two ranks).
    single = cli(*TRAIN, "--data", data, "--out", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "a" / "arrays.npz").read_bytes() != (tmp_path / "single" / "arrays.npz").read_bytes()


def test_one_process_under_torchrun_is_the_single_process_run_byte_for_byte(data, tmp_path):
    plain = cli(*TRAIN, "--data", data, "--out", tmp_path / "plain")
    one = torchrun(1, *TRAIN, "--data", data, "--out", tmp_path / "one")
    module = subprocess.run([sys.executable, "-m", "snnfpga", *TRAIN, "--data", str(data), "--out",
                             str(tmp_path / "module")], capture_output=True, text=True, timeout=300)
    for run in (plain, one, module):
        assert run.returncode == 0, run.stderr[-3000:]
    assert same_files(tmp_path / "plain", tmp_path / "one") and same_files(tmp_path / "plain", tmp_path / "module")
    assert "data_parallel" not in json.loads((tmp_path / "plain" / "training.json").read_text())


def _batchnorm_rank(rank: int, port: int, out: str) -> None:
    """One of two ranks: half of a batch through the all-reduce BatchNorm; saves output,
    input gradient, parameter gradients and running statistics."""
    import torch.distributed as dist

    from snnfpga.model import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    x = torch.randn(10, 6, dtype=torch.float64) * 3 + 1
    weight = torch.linspace(0.5, 1.5, 6, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(6).double()
    with torch.no_grad():
        bn.weight.copy_(weight)
    distributed.sync_batchnorm(bn)
    mine = x[rank * 4: rank * 4 + (4 if rank == 0 else 6)].clone().requires_grad_()  # 4 and 6 images
    y = bn(mine)
    (y * torch.arange(1, 7, dtype=torch.float64)).sum().backward()
    torch.save({"y": y.detach(), "grad": mine.grad, "wgrad": bn.weight.grad, "mean": bn.running_mean,
                "var": bn.running_var}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_the_cpu_batchnorm_of_two_ranks_is_the_batchnorm_of_the_whole_batch(tmp_path):
    torch.multiprocessing.spawn(_batchnorm_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{k}.pt") for k in (0, 1)]
    torch.manual_seed(0)
    x = (torch.randn(10, 6, dtype=torch.float64) * 3 + 1).requires_grad_()
    bn = torch.nn.BatchNorm1d(6).double()
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, 6, dtype=torch.float64))
    y = bn(x)
    (y * torch.arange(1, 7, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach())
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), x.grad)
    torch.testing.assert_close(ranks[0]["wgrad"] + ranks[1]["wgrad"], bn.weight.grad)  # DDP sums, then averages
    for r in ranks:
        torch.testing.assert_close(r["mean"], bn.running_mean)
        torch.testing.assert_close(r["var"], bn.running_var)


def test_without_a_process_group_nothing_changes():
    from snnfpga.model import distributed

    assert not distributed.is_distributed() and distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.setup() is False  # no WORLD_SIZE: no process group
    bn = torch.nn.BatchNorm1d(3)
    distributed.sync_batchnorm(bn)
    x = torch.randn(5, 3)
    torch.testing.assert_close(bn(x), torch.nn.functional.batch_norm(x, None, None, training=True))
    assert type(distributed.plain_batchnorm(bn)) is torch.nn.BatchNorm1d
