"""One training loop for every command that trains (fine-tune, slim, SAP, lottery, distill)."""

from compressor.train.distill import distill_loss_fn, kd_loss
from compressor.train.loop import TrainConfig, TrainResult, evaluate, fit

__all__ = ["TrainConfig", "TrainResult", "evaluate", "fit", "distill_loss_fn", "kd_loss"]
