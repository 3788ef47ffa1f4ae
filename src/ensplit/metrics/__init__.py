"""metrics stage: pure functions of predictions (member log-probs `[members, N, classes]`, labels `[N]`)."""

from ensplit.metrics.calibration import (
    calibrated_nll,
    cnll_ttcv,
    cnll_ttcv_indexed,
    ensemble_log_probs,
    mean_log_probs,
    optimal_temperature,
    split_masks,
)
from ensplit.metrics.classification import accuracy, brier, classification_metrics, ece, nll
from ensplit.metrics.diversity import (
    cosine_similarity_matrix,
    disagreement_matrix,
    flatten_parameters,
    mean_pairwise_kl,
    normalized_diversity,
    pairwise_kl_matrix,
)
from ensplit.metrics.pool import (
    METRICS,
    PoolEstimate,
    curve_sizes,
    disjoint_ensembles,
    ensemble_metrics,
    pool_curve,
    pool_metrics,
)
from ensplit.metrics.validation import log_softmax, validate_labels, validate_predictions

__all__ = [
    "METRICS", "PoolEstimate", "accuracy", "brier", "calibrated_nll", "classification_metrics", "cnll_ttcv",
    "cnll_ttcv_indexed", "cosine_similarity_matrix", "curve_sizes", "disagreement_matrix", "disjoint_ensembles",
    "ece", "ensemble_log_probs", "ensemble_metrics", "flatten_parameters", "log_softmax", "mean_log_probs",
    "mean_pairwise_kl", "nll", "normalized_diversity", "optimal_temperature", "pairwise_kl_matrix", "pool_curve",
    "pool_metrics", "split_masks", "validate_labels", "validate_predictions",
]
