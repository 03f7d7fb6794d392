"""Results store and sweeps: the SQLite runs database, study grids, and their local or Ray execution.

Example:
    >>> from wattless.runs import RunsDB, load_study, run_sweep                  # doctest: +SKIP
    >>> result = run_sweep(load_study("study.yaml"), db="runs.db", workers=2)   # doctest: +SKIP
    >>> RunsDB("runs.db").list(study="digits-small", status="done")             # doctest: +SKIP
"""

from .db import RunsDB, RunsDBError
from .study import Study, Trial, load_study, stable_hash, study_from_dict
from .sweep import SweepResult, run_sweep

__all__ = ["RunsDB", "RunsDBError", "Study", "SweepResult", "Trial", "load_study", "run_sweep", "stable_hash",
           "study_from_dict"]
