"""Training on several processes (issue 8): gradient averaging, and torchrun with gloo on 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from ruamel.yaml import YAML

from fashiongen.errors import ConfigError
from fashiongen.gan import distributed
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.distributed import Ranks
from helpers import REPO_ROOT, make_prepared


def _average_in_process(rank: int, world: int, init_file: str, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    distributed.broadcast_module(module)
    for p in module.parameters():
        p.grad = torch.full_like(p, float(rank + 1))  # rank 0: ones, rank 1: twos
    distributed.average_gradients(module)
    stats = distributed.average_tensor(torch.tensor([float(rank)]))
    # plain lists, not tensors: a tensor crosses a Queue as a file descriptor that the receiver fetches from this
    # process, which may have exited by then on a loaded machine (FileNotFoundError in the parent)
    results.put((rank, [p.grad.tolist() for p in module.parameters()], stats.item(), module.weight.detach().tolist()))
    dist.destroy_process_group()


def test_gradients_and_statistics_are_averaged_over_two_gloo_processes(tmp_path):
    context = mp.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_average_in_process, args=(r, 2, str(tmp_path / "init"), results)) for r in range(2)]
    for proc in procs:
        proc.start()
    got = dict((rank, rest) for rank, *rest in (results.get(timeout=120) for _ in procs))
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    for rank in (0, 1):
        grads, stat, _ = got[rank]
        assert all(torch.allclose(g, torch.full_like(g, 1.5)) for g in map(torch.tensor, grads))
        assert stat == pytest.approx(0.5)
    assert torch.equal(torch.tensor(got[0][2]), torch.tensor(got[1][2]))  # the same weights after the broadcast


def test_each_rank_takes_its_own_slice_of_the_global_batch():
    index = torch.arange(8)
    slices = [Ranks(rank=r, world_size=2).shard(index).tolist() for r in (0, 1)]
    assert slices == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert Ranks().shard(index).tolist() == list(range(8))
    assert Ranks(rank=0, world_size=2).seed(5) != Ranks(rank=1, world_size=2).seed(5)


def test_global_batch_must_divide_over_the_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="train.batch_size=32 is the global batch"):
        distributed.start("cpu", 32)


@pytest.mark.e2e
def test_torchrun_with_two_cpu_processes_trains_and_writes_one_generator(tmp_path):
    repo = tmp_path / "repo"
    make_prepared(repo / "data" / "prepared", n_train=256, n_test=128)
    params = YAML(typ="safe").load(REPO_ROOT / "params.yaml")
    params["model"].update(g_width=16, d_width=16)
    params["train"].update(epochs=2, batch_size=32, eval_every=0, log_every=2)
    with open(repo / "params.yaml", "w") as handle:
        YAML().dump(params, handle)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO_ROOT / "stages" / "train.py")]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("training on cpu × 2 processes") == 1  # rank 0 logs; rank 1 trains quietly
    generator = load_generator(repo / "models" / "generator.pt", torch.device("cpu"))
    assert generator.spec.width == 16
    steps = (repo / "results/train/plots/metrics/d_loss.tsv").read_text().splitlines()
    assert len(steps) > 2  # dvclive wrote once, from rank 0
    checkpoints = repo / "models" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch_*.pt")) == ["epoch_0001.pt", "epoch_0002.pt"]
    # a run interrupted after its first epoch (as if killed): every rank resumes from that checkpoint
    (checkpoints / "epoch_0002.pt").unlink()
    (checkpoints / "published.json").unlink()
    again = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming from models/checkpoints/epoch_0001.pt (epoch 1" in again.stderr and "epochs 2..2" in again.stderr
    assert load_generator(repo / "models" / "generator.pt").spec.width == 16
