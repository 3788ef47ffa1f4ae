"""Synthetic pools for analysis tests: members share a per-object signal (true class boosted) and differ by
seeded noise, so ensembles of them improve with n as real pools do."""

import torch


def synthetic_pool(networks: int, objects: int = 150, classes: int = 4, noise: float = 1.0, seed: int = 0,
                   data_seed: int = 99) -> tuple[torch.Tensor, torch.Tensor]:
    """Member log-probs `[networks, objects, classes]` (float64) and labels `[objects]`. `data_seed` fixes
    the labels and the shared signal; `seed` the members' noise."""
    labels = torch.randint(0, classes, (objects,), generator=torch.Generator().manual_seed(data_seed))
    signal = torch.randn(objects, classes, generator=torch.Generator().manual_seed(data_seed - 1),
                         dtype=torch.float64)
    signal += 1.5 * torch.nn.functional.one_hot(labels, classes)
    member = torch.randn(networks, objects, classes, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    return torch.log_softmax(2 * (signal + noise * member), -1), labels
