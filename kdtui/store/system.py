"""The typed view of the system metrics a step or epoch record carries (its ``system``
mapping, written by the trainer's sampler: :mod:`kdtui.engine.system`).

Usage::

    sample = SystemSample.from_record(record)      # a StepRecord or EpochRecord
    sample.cpu_percent, sample.ram_used_gb, [gpu.util_percent for gpu in sample.gpus]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GPU_KEY = re.compile(r"gpu(\d+)_(util_percent|mem_used_gb|mem_total_gb)")


@dataclass
class GpuSample:
    index: int
    util_percent: float | None = None
    mem_used_gb: float | None = None
    mem_total_gb: float | None = None


@dataclass
class SystemSample:
    cpu_percent: float | None = None     # the whole machine's, since the previous sample
    ram_used_gb: float | None = None     # the machine's RAM in use
    ram_total_gb: float | None = None
    process_rss_gb: float | None = None  # the training process's resident memory
    gpus: list[GpuSample] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.cpu_percent is None and self.ram_used_gb is None and not self.gpus

    @classmethod
    def from_record(cls, record: Any) -> "SystemSample":
        return cls.from_dict(getattr(record, "system", None) or {})

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> "SystemSample":
        sample = cls(cpu_percent=values.get("cpu_percent"), ram_used_gb=values.get("ram_used_gb"),
                     ram_total_gb=values.get("ram_total_gb"), process_rss_gb=values.get("process_rss_gb"))
        gpus: dict[int, GpuSample] = {}
        for key, value in values.items():
            match = GPU_KEY.fullmatch(key)
            if match:
                gpu = gpus.setdefault(int(match[1]), GpuSample(int(match[1])))
                setattr(gpu, match[2], value)
        sample.gpus = [gpus[i] for i in sorted(gpus)]
        return sample
