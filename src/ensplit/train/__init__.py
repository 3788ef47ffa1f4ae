"""Training: one member-batched loop with SGD/Adam and cosine/step schedules."""

from ensplit.train.config import TrainConfig
from ensplit.train.loop import TrainResult, epoch_indices, member_generators, predict_log_probs, train

__all__ = ["TrainConfig", "TrainResult", "epoch_indices", "member_generators", "predict_log_probs", "train"]
