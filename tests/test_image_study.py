"""A CIFAR-10 memory-split study with a small ResNet runs end to end on the shared data (CPU, subset)."""

import os
from pathlib import Path

import numpy as np
import pytest

from ensplit.experiments.study_config import StudyConfig
from studies import train_study

CIFAR = Path(os.environ.get("ENSPLIT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "cifar10"


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR / "train.parquet").exists(), reason=f"shared CIFAR-10 not found at {CIFAR}")
def test_cifar10_resnet_study_end_to_end(tmp_path):
    config = StudyConfig.from_mapping({
        "dataset": str(CIFAR), "family": "resnet", "depth": 8, "widths": "4,8", "pool_factor": 1,
        "pool_min": 2, "pool_max": 3, "train_subset": 256, "test_subset": 128, "epochs": 1, "batch_size": 64,
        "optimizer": "sgd", "lr": 0.05,
    })
    store = train_study(config, tmp_path / "study", progress=False)
    labels = store.labels()
    assert labels.shape == (128,) and labels.max() < 10
    for width in (4, 8):
        pool, params = store.pool(width)
        assert pool.shape[1:] == (128, 10) and pool.shape[0] >= 2
        assert np.isfinite(pool).all()
        np.testing.assert_allclose(np.exp(pool).sum(-1), 1.0, atol=1e-4)
    from ensplit.models import count_params

    assert store.networks("pool", 8)[0]["params"] == count_params("resnet", 8, 8)
