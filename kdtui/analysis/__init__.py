"""Analysis of a trained run: evaluation and calibration, t-SNE of the penultimate
features with V-measures, the AMD loss's attention maps and Grad-CAM, terminal pictures
and figures for a paper. ``kdtui eval`` and ``kdtui plot`` (kdtui/cli_eval.py) and the
app's analysis screen use it; results are cached in the run folder's ``eval/``.

Modules: :mod:`.evaluate` (top-k, NLL, ECE and reliability bins, confusion, agreement),
:mod:`.loading` (a run's networks and test set, one float32 pass), :mod:`.features`
(stratified subset, t-SNE, k-means, V-measure), :mod:`.maps` (Qp/Qn as the AMD loss
computes them, Grad-CAM), :mod:`.results` (``eval/`` read and written atomically),
:mod:`.pipeline` (one analysis end to end, with progress and cancel), :mod:`.render`
(truecolor half-block pictures), :mod:`.report` (the rich renderables of a result),
:mod:`.figures` (matplotlib).

Importing this package imports nothing; scikit-learn, matplotlib and grad-cam are loaded
by the modules that need them, which only the analysis commands import.
"""
