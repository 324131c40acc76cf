"""System metrics: sampled in the training process where it logs, recorded in
metrics.jsonl, read back typed, shown in the dashboard's header while the run trains."""

from __future__ import annotations

import builtins
import json
import time

from kdtui.config import load_config
from kdtui.engine.launch import start_run
from kdtui.engine.system import SystemSampler
from kdtui.store import RunStoreWriter, runs_root
from kdtui.store.records import parse_line
from kdtui.store.system import GpuSample, SystemSample


def test_the_sampler_reads_cpu_and_ram_at_most_once_a_second():
    sampler = SystemSampler(cuda=False)
    first = sampler.sample()
    assert {"cpu_percent", "ram_used_gb", "ram_total_gb", "process_rss_gb"} <= set(first)
    assert 0 < first["ram_used_gb"] <= first["ram_total_gb"] and first["process_rss_gb"] > 0
    assert sampler.sample() is first                      # within the second: the same sample
    sampler.last_time = time.monotonic() - 2
    assert sampler.sample() is not first


def test_without_psutil_or_a_gpu_driver_the_keys_are_left_out(monkeypatch):
    real_import = builtins.__import__

    def no_libraries(name, *args, **kwargs):
        if name in ("psutil", "pynvml"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_libraries)
    assert SystemSampler(cuda=True).sample() == {}


def test_a_sample_reads_back_typed_per_gpu():
    sample = SystemSample.from_dict({"cpu_percent": 37.0, "ram_used_gb": 12.3, "gpu1_util_percent": 50.0,
                                     "gpu0_util_percent": 85.0, "gpu0_mem_used_gb": 10.0,
                                     "gpu0_mem_total_gb": 80.0})
    assert sample.cpu_percent == 37.0 and sample.ram_total_gb is None
    assert sample.gpus == [GpuSample(0, 85.0, 10.0, 80.0), GpuSample(1, 50.0)]
    assert SystemSample.from_dict({}).empty
    line = json.dumps({"event": "step", "epoch": 1, "step": 2, "system": {"cpu_percent": 5.0}})
    assert SystemSample.from_record(parse_line(line)).cpu_percent == 5.0


def test_a_run_logs_the_samples_with_its_step_and_epoch_records(tiny_presets):
    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=1"])
    run, _ = start_run(cfg, runs_root(), sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
    records = run.records()
    steps = [r for r in records if r.kind == "step"]
    assert steps and all("cpu_percent" in r.system and "ram_used_gb" in r.system for r in steps)
    assert "process_rss_gb" in run.epochs()[0].system
