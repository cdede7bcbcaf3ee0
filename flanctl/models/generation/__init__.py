"""Generation and scoring for the evals: `KerasPredictor` and the per-family engines."""

from flanctl.models.generation.predictor import KerasPredictor, cut_at_stop

__all__ = ["KerasPredictor", "cut_at_stop"]
