"""The loss-method registry, in a module of its own so that the method modules can register
into it without importing the package that imports them.

Usage::

    from kdtui.losses.registry import LOSSES

    @LOSSES.register("foo")
    class FooLoss(LossMethod): ...
"""

from kdtui.registry import Registry

LOSSES = Registry("loss")
