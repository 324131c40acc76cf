"""System metrics of a training process: CPU and RAM (psutil), and per GPU its utilisation
and memory (NVIDIA's NVML, through nvidia-ml-py, only where CUDA is present).

Sampled by the trainer where it logs (every ``train.log_every`` steps, at most once a
second), never per step; every call is guarded, so a missing library or driver only leaves
the keys out. The keys are those of :class:`kdtui.store.system.SystemSample`.

Usage::

    sampler = SystemSampler(cuda=torch.cuda.is_available())
    sampler.sample()   # {"cpu_percent": 37.5, "ram_used_gb": 12.3, ..., "gpu0_util_percent": 85.0, ...}
"""

from __future__ import annotations

import os
import time
from typing import Any

GB = 1024 ** 3
MIN_INTERVAL_S = 1.0


class SystemSampler:
    def __init__(self, cuda: bool) -> None:
        self.last: dict[str, float] = {}
        self.last_time = 0.0
        self.process: Any = None
        self.psutil: Any = None
        self.gpus: list[Any] = []
        self.nvml: Any = None
        try:
            import psutil

            self.psutil = psutil
            self.process = psutil.Process(os.getpid())
            psutil.cpu_percent(None)            # the first call starts the measuring window
        except Exception:                       # noqa: BLE001 - no psutil, or no /proc: no CPU/RAM
            self.psutil = None
        if cuda:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.nvml = pynvml
                self.gpus = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            except Exception:                   # noqa: BLE001 - no nvidia-ml-py or no driver: no GPU keys
                self.nvml, self.gpus = None, []

    def sample(self) -> dict[str, float]:
        """The current values (the last ones if sampled less than a second ago)."""
        now = time.monotonic()
        if self.last and now - self.last_time < MIN_INTERVAL_S:
            return self.last
        values: dict[str, float] = {}
        if self.psutil is not None:
            try:
                memory = self.psutil.virtual_memory()
                values["cpu_percent"] = float(self.psutil.cpu_percent(None))
                values["ram_used_gb"] = (memory.total - memory.available) / GB
                values["ram_total_gb"] = memory.total / GB
                values["process_rss_gb"] = self.process.memory_info().rss / GB
            except Exception:                   # noqa: BLE001
                pass
        for index, handle in enumerate(self.gpus):
            try:
                utilisation = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                values[f"gpu{index}_util_percent"] = float(utilisation.gpu)
                values[f"gpu{index}_mem_used_gb"] = memory.used / GB
                values[f"gpu{index}_mem_total_gb"] = memory.total / GB
            except Exception:                   # noqa: BLE001
                pass
        self.last, self.last_time = {k: round(v, 3) for k, v in values.items()}, now
        return self.last
