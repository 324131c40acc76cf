"""Loss methods, one file each, registered by name in :data:`LOSSES`.

Usage::

    from kdtui.losses import LOSSES
    method = LOSSES.get("amd")(LOSSES.get("amd").Options(margin=1.35))
    terms = method(inputs)          # {"A": ..., "P": ..., "N": ...}
"""

from typing import Any

from kdtui.losses.registry import LOSSES


def loss_label(name: str, options: Any) -> str:
    """How runs tables name a configured loss term, e.g. 'amd(g+l)'; the bare name if unknown."""
    return LOSSES.get(name).label(name, options) if name in LOSSES else name


# Importing the method modules fills the registry.
from kdtui.losses import afd, afds, amd, at, ce, crd, dkd, fitnet, kd, lskd, pkt, rkd, sp  # noqa: E402,F401
