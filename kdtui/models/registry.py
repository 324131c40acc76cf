"""The network registry, in a module of its own so that the network modules can register
into it without importing the package that imports them.

Usage::

    from kdtui.models.registry import MODELS

    @MODELS.register("foo")
    def foo(num_classes: int) -> nn.Module: ...
"""

from kdtui.registry import Registry

MODELS = Registry("architecture")
