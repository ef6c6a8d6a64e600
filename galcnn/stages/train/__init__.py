"""``galcnn train``: a model from a prepared dataset, written to a run directory.

``options``   :class:`TrainOptions`, what defines a run
``tasks``     the classify and segment plug-ins: classes, targets, loss, validation, end
``sampling``  batches from memory-mapped shards; class weights and balanced sampling
``finetune``  starting from another checkpoint
``run_dir``   config, per-epoch metrics, final metrics and plots
``loop``      one run: the task-neutral loop: checkpoints, resume, DDP, early stopping
``ensemble``  :func:`train`: one run, or an ensemble of them put together into one checkpoint
"""

from galcnn.stages.train.ensemble import train
from galcnn.stages.train.loop import TrainHooks, TrainResult, resumed_options
from galcnn.stages.train.options import TrainError, TrainOptions
from galcnn.stages.train.sampling import class_weights_for
from galcnn.stages.train.tasks import TASK_TYPES

__all__ = ["train", "TrainHooks", "resumed_options", "TrainOptions", "TrainResult", "TrainError",
           "class_weights_for", "TASK_TYPES"]
