"""kdtui: a knowledge-distillation workbench for image classifiers.

Importing the package is deliberately cheap (no torch): the CLI's ``--help`` and the
preset/run listings must start instantly. Heavy modules import torch themselves.
"""

__version__ = "0.1.0"
