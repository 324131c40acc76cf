"""Studies: many runs described by one YAML file (a grid or a list of points, times
seeds), run one after another, and their results tabled over seeds.

Modules: :mod:`.spec` (the study file: reading and checking it), :mod:`.expand` (its runs,
each config validated; override rendering), :mod:`.runner` (which runs are done, to resume
or to start; running them), :mod:`.table` (grouping and statistics), :mod:`.formats`
(text, Markdown, CSV, LaTeX), :mod:`.scatter` (final loss against accuracy, Pearson's r).
The commands are ``kdtui sweep`` and ``kdtui table`` (:mod:`kdtui.cli_study`).

Usage::

    spec = load_study(find_study("quickstart_gamma"))
    runs = expand_study(spec)                       # ConfigError naming a bad point
    plans = plan_study(spec, runs, runs_root())     # done / resume / would run
"""
