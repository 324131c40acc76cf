"""What a run ran on: versions, hardware and the command line, recorded in ``env.json``.

A number is only comparable with another if the two came from the same code and
libraries: the run folder records the kdtui version (and git commit, with a dirty flag,
when kdtui runs from a checkout), Python, PyTorch, torchvision, CUDA, cuDNN, the GPUs,
the CPU count and the exact command line.

Usage::

    environment = collect_environment()   # a JSON-ready dict (imports torch)
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kdtui


def git_state(folder: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding ``folder``; None when it is not in
    one (an installed wheel) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != folder.parent.resolve():
            return None  # e.g. an installed copy inside some other repository
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def collect_environment(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if cuda else None
    return {
        "time": time.time(),
        "kdtui": kdtui.__version__,
        "git": git_state(Path(kdtui.__file__).resolve().parent),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": cudnn,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "command": list(sys.argv if argv is None else argv),
    }
