"""Held-out evaluation with the paper's protocol: MMLU, BBH, TyDiQA, MGSM, built-in tasks.

`run_suite` evaluates a `Predictor`; `score_predictions` scores a predictions file with the same
extraction and aggregation. Nothing here imports a ML framework until a model is loaded.
"""

from flanctl.evals.predictor import Predictor
from flanctl.evals.runner import combine, run_suite, run_suites, score_predictions, write_result

__all__ = ["Predictor", "combine", "run_suite", "run_suites", "score_predictions", "write_result"]
