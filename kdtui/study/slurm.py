"""Submitting a study to SLURM: one job per shared 'auto' teacher, then the points as one job
array that waits for them (``kdtui sweep FILE --slurm``), through submitit.

Each job runs the same command a parallel sweep's child runs (``python -m kdtui sweep FILE
--only K --headless``), so a task lands as a normal run of the study, skips a finished point,
resumes a stopped or preempted one, and is kept off a point another process runs. submitit
writes the sbatch scripts, submits the array (``--array``, ``%N`` for ``--parallel N``) and
keeps each task's output in ``<runs>/.sweeps/<study>/slurm/``.

Usage::

    message, jobs = submit_study(spec, plans, root, cli_overrides, ["slurm_partition=gpu"], 4, None)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError
from kdtui.overrides import parse_override
from kdtui.study.parallel import child_command, shared_teachers
from kdtui.study.runner import RESUME, RUN, Planned
from kdtui.study.spec import StudySpec

# What a task asks for unless --slurm-set says otherwise: one process on one GPU, a day.
DEFAULTS: dict[str, Any] = {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1, "timeout_min": 24 * 60}


def slurm_parameters(pairs: list[str], parallel: int | None) -> dict[str, Any]:
    """--slurm-set KEY=VALUE pairs (values as --set reads them) over :data:`DEFAULTS`."""
    params = dict(DEFAULTS)
    for text in pairs:
        if "=" not in text:
            raise KdtuiError(f"--slurm-set: got {text!r}, expected KEY=VALUE, e.g. slurm_partition=gpu.")
        key, value = parse_override(text)
        params[key] = value
    if parallel is not None:
        if parallel < 1:
            raise KdtuiError(f"--parallel: got {parallel}, expected a number of array tasks ≥ 1.")
        params["slurm_array_parallelism"] = parallel
    return params


def check_available(cluster: str) -> None:
    """submitit installed, and (for SLURM) sbatch here to submit with."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise KdtuiError("--slurm submits through submitit, which is not installed: "
                         "pip install 'kdtui[slurm]' (or pip install submitit).") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise KdtuiError("--slurm: sbatch is not on PATH; run the sweep on a SLURM login node, or "
                         "use --parallel N / --gpus on this machine.")


def make_executor(folder: Path, params: dict[str, Any], cluster: str):  # noqa: ANN201 - submitit's
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    try:
        executor.update_parameters(**params)
    except (ValueError, TypeError) as exc:
        raise KdtuiError(f"--slurm-set: {exc}".splitlines()[0]) from None
    return executor


def submit_study(spec: StudySpec, plans: list[Planned], root: Path, cli_overrides: list[str],
                 slurm_set: list[str], parallel: int | None, gpus: str | None,
                 cluster: str = "slurm") -> tuple[str, list]:
    """Submit the study's runs still to do; (what was submitted, the submitit jobs: teachers
    first). ``cluster="local"`` runs the same jobs as local processes (tests), waiting for
    the teachers before submitting the points (only SLURM knows job dependencies)."""
    check_available(cluster)
    from submitit.helpers import CommandFunction

    if gpus is not None:
        raise KdtuiError("--gpus picks GPUs of this machine; with --slurm, ask SLURM for them: "
                         "--slurm-set gpus_per_node=1 (the default).")
    todo = [p for p in plans if p.action in (RUN, RESUME)]
    if not todo:
        return f"study {spec.name}: nothing to submit, every run is finished or training elsewhere.", []
    folder = root / ".sweeps" / spec.name / "slurm"
    params = slurm_parameters(slurm_set, parallel)
    teachers = shared_teachers(todo, root)
    teacher_jobs = []
    if teachers:
        executor = make_executor(folder, {**params, "name": f"{spec.name}-teacher"}, cluster)
        teacher_jobs = [executor.submit(CommandFunction(child_command(
            spec, plan.run.number, root, cli_overrides, teacher_only=True), cwd=str(Path.cwd())))
            for plan in teachers]
        if cluster != "slurm":
            for job in teacher_jobs:
                job.wait()
    executor = make_executor(folder, {**params, "name": spec.name}, cluster)
    if teacher_jobs and cluster == "slurm":
        executor.update_parameters(slurm_additional_parameters={
            "dependency": "afterok:" + ":".join(job.job_id for job in teacher_jobs)})
    with executor.batch():   # one job array
        jobs = [executor.submit(CommandFunction(child_command(spec, plan.run.number, root, cli_overrides),
                                                cwd=str(Path.cwd()))) for plan in todo]
    array = jobs[0].job_id.split("_")[0] if jobs and cluster == "slurm" else ", ".join(j.job_id for j in jobs)
    lines = [f"study {spec.name}: submitted {len(todo)} run(s) as job array {array}"
             + (f" ({params['slurm_array_parallelism']} at a time)" if "slurm_array_parallelism" in params else ""),
             *(f"  teacher job {job.job_id} first (the array starts after it finishes)" for job in teacher_jobs),
             f"  output: {folder}",
             f"  follow: squeue --me; `kdtui table --study {spec.name}` as runs finish; re-run "
             "this command to resubmit what did not finish"]
    return "\n".join(lines), [*teacher_jobs, *jobs]
