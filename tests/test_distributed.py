"""One run over two processes (torchrun, gloo on the CPU), against a single process.

Run alone with ``python -m pytest -q tests/test_distributed.py``. The end-to-end tests start
``python -m torch.distributed.run`` in its own process group, and kill whatever of it is left
when a test ends, whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.data.memory import InMemoryLoader
from kdtui.data.shard import Shard, ShardedBatches
from kdtui.engine.distributed import SYNC_BN_NEEDS_CUDA
from kdtui.store import RunDir, iter_runs

TIMEOUT_S = 240
PRESET = {
    "description": "tiny run on two processes",
    "data": {"dataset": "shapes", "train_size": 512, "test_size": 200},
    "student": {"arch": "wrn_10_1"},
    "loss": {"ce": {"weight": 1.0}},
    "train": {"epochs": 2, "batch_size": 64, "eval_batch_size": 100, "optimizer": "sgd", "lr": 0.05,
              "momentum": 0.9, "schedule": "cosine", "log_every": 4, "device": "cpu"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (this test's own runs folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def torchrun(root: Path, *args: str, nproc: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               "-m", "kdtui", "run", *args, "--headless", "--runs-dir", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)


@pytest.fixture
def launched(tmp_path: Path):
    """Start torchrun processes; afterwards none of them (nor their workers) is left."""
    started: list[subprocess.Popen] = []
    root = tmp_path / "ddp-runs"

    def start(*args: str, nproc: int = 2) -> subprocess.Popen:
        process = torchrun(root, *args, nproc=nproc)
        started.append(process)
        return process

    yield root, start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = processes_mentioning(str(root))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while processes_mentioning(str(root)) and time.time() < deadline:
        time.sleep(0.1)  # the killed processes' parents reap them
    assert not left, "training processes were left behind (killed now)"


def write_preset(tmp_path: Path, **train) -> Path:
    preset = {**PRESET, "train": {**PRESET["train"], **train}}
    path = tmp_path / "ddp_tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


# -- the data each rank sees -------------------------------------------------------------------

def test_rank_shares_of_a_step_are_the_single_process_batch():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    loader = InMemoryLoader(images, torch.arange(40) % 4, torch.zeros(3), torch.ones(3), augment=True, seed=3)
    single = list(loader.train_batches(16, epoch=2, device=torch.device("cpu"), with_indices=True))
    shares = [list(loader.train_batches(16, epoch=2, device=torch.device("cpu"), with_indices=True,
                                        shard=Shard(rank, 2))) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == len(single) == 2
    for step, whole in enumerate(single):
        for part in range(3):  # augmented images, labels, training-set positions
            joined = torch.cat([shares[0][step][part], shares[1][step][part]])
            assert torch.equal(joined, whole[part])
    test = [torch.cat([b[1] for b in loader.test_batches(7, torch.device("cpu"), shard=Shard(r, 3))])
            for r in range(3)]
    assert sorted(torch.cat(test).tolist()) == sorted((torch.arange(40) % 4).tolist())


def test_folder_batches_split_every_global_batch_over_the_ranks():
    shares = [list(ShardedBatches(50, 12, seed=5, shard=Shard(rank, 3))) for rank in range(3)]
    whole = list(ShardedBatches(50, 12, seed=5, shard=Shard()))
    assert all(len(share) == len(whole) == 4 for share in shares)
    for step, batch in enumerate(whole):
        assert sum((share[step] for share in shares), []) == batch
    seen = [i for share in shares for batch in share for i in batch]
    assert len(seen) == len(set(seen)) == 48  # every image at most once; the last 2 dropped
    tested = [i for rank in range(3) for i in Shard(rank, 3).test_indices(50)]
    assert sorted(tested) == list(range(50))  # every test image on exactly one rank


# -- end to end --------------------------------------------------------------------------------

def test_two_processes_train_like_one(launched, tmp_path: Path):
    """Same preset, seed and global batch (64) on one process and on two (32 each).

    The two runs see the same images, in the same order, with the same augmentation at every
    step (test above), and DDP averages equal-share gradients, which is the gradient of the
    global batch's mean loss. The one difference: BatchNorm normalises over each process's
    32 images instead of all 64 (no SyncBatchNorm on the CPU). That changes the forward pass
    by the sampling noise of a 32-image mean/variance — measured with this preset over seeds
    0-2 as at most 0.06 % of an epoch's mean loss, while changing the seed moves it by
    0.16-0.9 % — so losses must agree within 0.15 %. Test accuracy after two epochs of this
    tiny run is near chance, where the small weight difference flips a few borderline images
    of 200: measured up to 3 points, allowed 6. Exactly, with no tolerance: the two-process run's recorded
    test accuracy is that of its checkpoint over the whole test set in one process (each
    test image counted once), and only one run folder is written.
    """
    root, start = launched
    preset = write_preset(tmp_path)
    result = CliRunner().invoke(app, ["run", str(preset), "--headless", "--runs-dir", str(tmp_path / "single")])
    assert result.exit_code == 0, result.output
    process = start(str(preset))
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, output

    runs = list(iter_runs(root))
    assert len(runs) == 1, [run.id for run in runs]
    (single,) = iter_runs(tmp_path / "single")
    pair = runs[0]
    assert pair.summary().status == "finished" and pair.summary().world_size == 2
    assert single.summary().world_size == 1
    one, two = single.epochs(), pair.epochs()
    assert [r.epoch for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert b.loss["total"] == pytest.approx(a.loss["total"], rel=0.0015)
        assert abs(b.test_acc - a.test_acc) <= 6.0

    from kdtui.data import build_data
    from kdtui.config import load_config
    from kdtui.engine.checkpoint import load_checkpoint
    from kdtui.models import build_model

    cfg = load_config(data=pair.read_config())
    data = build_data(cfg.data, seed=cfg.train.seed)
    net = build_model(cfg.student.arch, data.num_classes)
    net.load_state_dict(load_checkpoint(pair.checkpoints / "last.pt")["model"])
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in data.test_batches(64, torch.device("cpu")):
            correct += int((net(images).logits.argmax(1) == labels).sum())
            total += len(labels)
    assert total == 200
    assert 100.0 * correct / total == pytest.approx(two[-1].test_acc, abs=1e-9)


def workers_of(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the processes torchrun started."""
    workers = {}
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            if entry.name.isdigit() and f"\nPPid:\t{launcher.pid}\n" in status:
                env = dict(item.split("=", 1) for item in
                           (entry / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item)
                workers[int(env["RANK"])] = int(entry.name)
        except (OSError, KeyError, ValueError):
            continue
    return workers


def started_training(process: subprocess.Popen, root: Path):
    """The run folder, once its first epoch is recorded (the run still going)."""
    deadline = time.time() + TIMEOUT_S
    run = None
    while time.time() < deadline and process.poll() is None:
        run = next(iter_runs(root), None)
        if run is not None and run.epochs():
            return run
        time.sleep(0.05)
    raise AssertionError(f"the run did not get through an epoch: {process.communicate()[0]}")


def test_sigterm_to_one_rank_stops_both_then_one_process_resumes(launched, tmp_path: Path):
    """Only rank 1 is signalled: the ranks agree to stop at the same step (without that,
    rank 0 would wait for rank 1 in the next all-reduce and fail the run)."""
    root, start = launched
    process = start(str(write_preset(tmp_path, epochs=4)))
    run = started_training(process, root)
    os.kill(workers_of(process)[1], signal.SIGTERM)
    output, _ = process.communicate(timeout=TIMEOUT_S)
    summary = run.summary()
    assert summary.status == "stopped", output
    assert 1 <= summary.epochs_done < 4 and summary.world_size == 2
    stopped_after = summary.epochs_done

    # The checkpoint two processes wrote continues in one.
    result = CliRunner().invoke(app, ["run", "--resume", str(run.path), "--headless"])
    assert result.exit_code == 0, result.output
    summary = run.summary()
    assert summary.status == "finished" and summary.epochs_done == 4 and summary.world_size == 1
    assert [r.epoch for r in run.epochs()] == [1, 2, 3, 4]
    assert f"resuming after epoch {stopped_after}" in run.log_path.read_text()


def test_sigterm_to_the_launcher_stops_both_ranks(launched, tmp_path: Path):
    root, start = launched
    process = start(str(write_preset(tmp_path, epochs=4)))
    run = started_training(process, root)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert run.summary().status == "stopped", output
    assert not processes_mentioning(str(root)), "a rank outlived the launcher"


DUMP_EACH_EPOCH = """
import sys, torch
from kdtui.engine import trainer
folder = sys.argv[1]
train_epoch = trainer.Trainer.train_epoch
def dumped(self, epoch):
    done = train_epoch(self, epoch)
    torch.save({"objective": self.objective.state_dict(), "student": self.student.state_dict()},
               f"{folder}/rank{self.world.rank}-epoch{epoch}.pt")
    return done
trainer.Trainer.train_epoch = dumped
from kdtui.cli import app
sys.argv = ["kdtui", *sys.argv[2:]]
app()
"""


def test_learned_loss_modules_and_crd_memories_stay_identical_on_every_rank(tmp_path: Path):
    """CRD (embeddings, memory banks, Z) and FitNet (regressor, with a BatchNorm) trained on two
    processes: after each epoch every tensor of the student and the loss modules is equal on
    both ranks, so the checkpoint rank 0 writes is what every rank trained with."""
    from kdtui.models import build_model

    teacher = tmp_path / "teacher.pt"
    torch.save(build_model("wrn_10_1", 10).state_dict(), teacher)
    preset = {**PRESET, "data": {**PRESET["data"], "train_size": 128, "test_size": 50},
              "teacher": {"checkpoint": str(teacher), "arch": "wrn_10_1"},
              "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "crd": {"weight": 0.8, "nce_k": 32},
                       "fitnet": {"weight": 1.0}},
              "train": {**PRESET["train"], "epochs": 1, "batch_size": 32}}
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(preset))
    script = tmp_path / "dump_each_epoch.py"
    script.write_text(DUMP_EACH_EPOCH)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), str(script), str(dumps), "run",
               str(tmp_path / "crd.yaml"), "--headless", "--runs-dir", str(tmp_path / "runs-crd")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    states = [torch.load(dumps / f"rank{rank}-epoch1.pt", weights_only=True) for rank in range(2)]
    for part in ("objective", "student"):
        ours, theirs = states[0][part], states[1][part]
        assert ours.keys() == theirs.keys()
        assert [k for k in ours if not torch.equal(ours[k], theirs[k])] == []
    assert {"methods.crd.memory_s", "methods.crd.z", "methods.fitnet.regressor.1.running_var"} <= set(states[0]["objective"])


def test_a_rank_that_dies_fails_the_run_clearly_and_keeps_its_record(launched, tmp_path: Path):
    root, start = launched
    process = start(str(write_preset(tmp_path, epochs=4)))
    run = started_training(process, root)
    os.kill(workers_of(process)[1], signal.SIGKILL)
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode != 0
    summary = run.summary()
    assert summary.status == "failed", output
    assert summary.error.startswith("Process 0 of 2 lost the others") and "--resume" in summary.error
    assert summary.epochs_done >= 1 and (run.checkpoints / "last.pt").exists()
    assert [r.epoch for r in run.epochs()] == list(range(1, summary.epochs_done + 1))


def test_a_global_batch_that_does_not_divide_is_a_clear_error():
    from kdtui.engine.distributed import World, local_batch_size
    from kdtui.errors import ConfigError

    assert local_batch_size(64, World(rank=1, size=4, active=True)) == 16
    with pytest.raises(ConfigError, match="train.batch_size: 63 is the global batch and must divide "
                                          "evenly over the 2 processes"):
        local_batch_size(63, World(rank=0, size=2, active=True))


# -- collective pieces, in two spawned processes -----------------------------------------------

def collective_checks(rank: int, world: int, init_file: str, results: str) -> None:
    """Run in each of two processes: CRD's memory update, the loss modules' gradient average
    and the configuration check, each against what one process computes."""
    import torch.distributed as dist

    from kdtui.engine import distributed as ddp
    from kdtui.errors import KdtuiError
    from kdtui.losses.crd import CRDLoss, CRDOptions

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    me = ddp.current_world()
    out: dict = {}
    # CRD: each rank holds half of a batch of 8; both memories must become the single-process
    # memory after the whole batch's update.
    torch.manual_seed(0)
    labels = torch.arange(20) % 4
    crd = CRDLoss(CRDOptions(feat_dim=6, nce_k=5))
    emb_s, emb_t = torch.randn(8, 10), torch.randn(8, 12)
    dry = type("Dry", (), {"student_embedding": emb_s, "teacher_embedding": emb_t})()
    crd.setup_data(dry, labels)
    ddp.broadcast_state(crd, me)
    before = {k: v.clone() for k, v in crd.state_dict().items()}
    indices = torch.tensor([3, 17, 5, 11, 0, 8, 14, 2])
    part = slice(4 * rank, 4 * rank + 4)
    v_s, v_t = crd.embed_s(emb_s), crd.embed_t(emb_t)
    crd.update_memory(v_s[part], v_t[part], indices[part])
    out["memory_s"], out["memory_t"] = crd.memory_s.tolist(), crd.memory_t.tolist()
    crd.load_state_dict(before)
    dist.destroy_process_group()  # now one process: the reference update with the whole batch
    crd.update_memory(v_s, v_t, indices)
    out["single_s"], out["single_t"] = crd.memory_s.tolist(), crd.memory_t.tolist()
    dist.init_process_group("gloo", init_method=f"file://{init_file}-2", rank=rank, world_size=world)
    me = ddp.current_world()
    # Gradients of a loss module: the average over the ranks.
    layer = torch.nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.full((1, 2), float(rank + 1))
    ddp.average_gradients([layer.weight], me)
    out["grad"] = layer.weight.grad.tolist()
    try:
        ddp.check_same(me, {"lr": 0.1 if rank == 0 else 0.2}, "configuration")
        out["mismatch"] = None
    except KdtuiError as exc:
        out["mismatch"] = str(exc)
    try:  # a problem only rank 1 has stops rank 0 too, with rank 1's message
        ddp.check_launch("cpu", 64 if rank == 0 else 63, False, me)
        out["launch"] = None
    except KdtuiError as exc:
        out["launch"] = str(exc)
    try:
        ddp.check_launch("cpu", 64, True, me)
    except KdtuiError as exc:
        out["sync_bn"] = str(exc)
    # One-time data work (the image cache): rank 0 first, then the others; a stop on rank 0
    # is every rank's answer, and the others then do not start.
    order = Path(f"{results}.order")

    def work() -> bool:
        with order.open("a") as log:
            log.write(f"start {rank}\n")
        time.sleep(0.3 if rank == 0 else 0.0)
        with order.open("a") as log:
            log.write(f"end {rank}\n")
        return True

    out["main_first"] = ddp.main_first(me, work)
    out["main_first_stopped"] = ddp.main_first(me, lambda: rank != 0 and work())
    dist.destroy_process_group()
    Path(f"{results}.{rank}").write_text(json.dumps(out))


def test_memories_gradients_and_configs_agree_across_processes(tmp_path: Path):
    import torch.multiprocessing as mp

    results = str(tmp_path / "result")
    mp.start_processes(collective_checks, args=(2, str(tmp_path / "init"), results), nprocs=2,
                       start_method="spawn", join=True)
    ranks = [json.loads(Path(f"{results}.{rank}").read_text()) for rank in range(2)]
    for out in ranks:
        for side in ("s", "t"):
            assert torch.allclose(torch.tensor(out[f"memory_{side}"]), torch.tensor(out[f"single_{side}"]),
                                  atol=1e-6)
        assert out["grad"] == [[1.5, 1.5]]
        assert out["mismatch"] == ("Process 1 was started with a different configuration than process 0; "
                                   "start every process with the same command line.")
    assert ranks[0]["memory_s"] == ranks[1]["memory_s"]
    assert ranks[0]["launch"].startswith("Process 1: train.batch_size: 63 is the global batch")
    assert ranks[1]["launch"].startswith("train.batch_size: 63 is the global batch")
    assert ranks[0]["sync_bn"] == ranks[1]["sync_bn"] == SYNC_BN_NEEDS_CUDA
    assert Path(f"{results}.order").read_text().split("\n")[:-1] == ["start 0", "end 0", "start 1", "end 1"]
    assert [out["main_first"] for out in ranks] == [True, True]
    assert [out["main_first_stopped"] for out in ranks] == [False, False]


def test_runs_show_says_how_many_processes_trained_the_run(tmp_path: Path):
    run = RunDir(tmp_path / "20261130-120000-pair")
    (run.path / "checkpoints").mkdir(parents=True)
    run.write_config({"preset": "pair"})
    run.write_summary({"status": "finished", "run_id": run.id, "device": "cuda:0", "world_size": 8})
    result = CliRunner().invoke(app, ["runs", "show", run.id, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "trained by 8 processes (torchrun) on cuda:0" in result.output
