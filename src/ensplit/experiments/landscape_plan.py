"""`landscape`'s plan: one `TrainJob` per init, refused up front when it cannot fit the device.

Init k is one plain network of seed `recipe.seed + k` (the seed `landscape` always gave it), trained with the
recipe and then for the tail, checkpointed on the schedule. The schedule (`every`, `tail_epochs` and the tail's
resolved learning rate) is what the trajectory depends on besides the training, so it is part of the job's
method options and so of its id; `first_index` is the init's index. A rerun with more inits plans the same jobs
for the first ones and trains only the new ones.
"""

from __future__ import annotations

import dataclasses

from ensplit.data.dataset import Dataset
from ensplit.experiments.landscape_config import LandscapeConfig
from ensplit.runs.plan import TrainJob
from ensplit.runs.resources import FLOAT32, check_training, require

KIND = "landscape"
SCHEDULE = ("every", "tail_epochs", "tail_lr")  # a landscape job's method options, in this order


def job_schedule(job: TrainJob) -> tuple[int, int, float]:
    """(every, tail_epochs, tail_lr) of a planned landscape job."""
    options = dict(job.method_options)
    return int(options["every"]), int(options["tail_epochs"]), float(options["tail_lr"])


def plan_landscape(config: LandscapeConfig) -> list[TrainJob]:
    """One job per init, in init order."""
    r = config.recipe
    schedule = tuple(sorted(zip(SCHEDULE, (config.every, config.tail_epochs, config.resolved_tail_lr),
                                strict=True)))
    train = tuple(sorted(dataclasses.asdict(r.train).items()))
    return [TrainJob(KIND, r.family, config.width, r.depth, tuple(sorted(r.family_options.items())), r.data, train,
                     (r.seed + k,), k, "deep", 0, schedule)
            for k in range(config.inits)]


def check_landscape_fits(config: LandscapeConfig, dataset: Dataset) -> None:
    """Refuse, before anything trains, a run whose training or checkpoints cannot fit the device's memory."""
    recipe = config.recipe
    params = recipe.params(config.width, dataset)
    checkpoints = config.inits * config.checkpoints_per_init
    check_training(params, recipe.train.optimizer, dataset.x_train.device,
                   f"training one init of width {config.width}", "lower --width")
    require(FLOAT32 * params * checkpoints, dataset.x_train.device, f"holding {checkpoints} checkpoints",
            "raise --every or lower --tail-epochs")
