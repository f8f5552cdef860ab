"""Evaluation against expert labels (Dice, HD95, CCC, Bland-Altman, CoV, detection), noise robustness and
classical threshold baselines."""
from nnunetv2_scarnet.evaluation.evaluate import EvaluationInputError, comparison_rows, evaluate_folders

__all__ = ["EvaluationInputError", "comparison_rows", "evaluate_folders"]
