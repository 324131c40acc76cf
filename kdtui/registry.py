"""Name → factory registries filled by decorators.

Usage::

    MODELS = Registry("model")

    @MODELS.register("resnet20")
    def resnet20(num_classes: int) -> nn.Module: ...

    @MODELS.register_family("wrn", r"wrn_(\\d+)_(\\d+)", examples=("wrn_16_1", "wrn_40_2"))
    def wrn(depth: str, width: str, num_classes: int) -> nn.Module: ...

    MODELS.get("wrn_16_1")   # -> callable taking the remaining keyword arguments

Families cover parametric names (any valid WRN depth/width); the regex groups are
passed to the factory as positional strings before the caller's arguments.

An entry can carry metadata, given as keywords to ``register`` and read back with
``info`` without calling (or importing anything of) the entry; a registry made with
``info_type`` builds that type from the name and the keywords::

    DATASETS = Registry("dataset", info_type=DatasetInfo)

    @DATASETS.register("cifar100", num_classes=100, image_size=32, ...)
    def cifar100(cfg, seed, info): ...

    DATASETS.info("cifar100").num_classes   # 100
"""

from __future__ import annotations

import difflib
import functools
import re
from types import SimpleNamespace
from typing import Any, Callable, Iterator

from kdtui.errors import ConfigError


class Registry:
    def __init__(self, kind: str, info_type: Callable[..., Any] | None = None) -> None:
        self.kind = kind
        self._info_type = info_type
        self._entries: dict[str, Any] = {}
        self._info: dict[str, Any] = {}
        self._families: list[tuple[str, re.Pattern[str], Callable[..., Any], tuple[str, ...]]] = []

    def register(self, name: str, **metadata: Any) -> Callable[[Any], Any]:
        """Decorator registering an entry under ``name``, with optional metadata keywords
        (``info_type(name=name, **metadata)`` when the registry has an info type)."""
        if self._info_type is not None:
            info = self._info_type(name=name, **metadata)
        else:
            info = SimpleNamespace(name=name, **metadata)

        def decorator(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._info[name] = info
            return obj

        return decorator

    def info(self, name: str) -> Any:
        """The metadata registered with ``name`` (an exact name, not a family member)."""
        if name not in self._info:
            raise ConfigError(self.unknown_message(name))
        return self._info[name]

    def infos(self) -> list[Any]:
        """The metadata of every exact name, in registration order."""
        return list(self._info.values())

    def register_family(
        self, family: str, pattern: str, examples: tuple[str, ...] = ()
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._families.append((family, re.compile(pattern), factory, examples))
            return factory

        return decorator

    def __contains__(self, name: str) -> bool:
        return self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Every exact name plus each family's examples (what error messages list)."""
        names = list(self._entries)
        for _, _, _, examples in self._families:
            names.extend(examples)
        return names

    def family_patterns(self) -> list[str]:
        return [pattern.pattern for _, pattern, _, _ in self._families]

    def _lookup(self, name: str) -> Any | None:
        if name in self._entries:
            return self._entries[name]
        for _, pattern, factory, _ in self._families:
            match = pattern.fullmatch(name)
            if match:
                return functools.partial(factory, *match.groups())
        return None

    def get(self, name: str) -> Any:
        found = self._lookup(name)
        if found is None:
            raise ConfigError(self.unknown_message(name))
        return found

    def unknown_message(self, name: str) -> str:
        valid = self.names()
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        families = "".join(f"; or any name matching {p}" for p in self.family_patterns())
        return f"Unknown {self.kind} {name!r}.{hint} Valid: {', '.join(valid)}{families}."
