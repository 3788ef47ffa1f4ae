"""Storage: a study folder's index and prediction arrays, trajectory checkpoints, and `.npz` pools.

Nothing here imports a later stage; nothing here unpickles (arrays are read with `allow_pickle=False`,
weights are safetensors).
"""

from ensplit.store.results import ResultStore, atomic_save_npy, git_commit

__all__ = ["ResultStore", "atomic_save_npy", "git_commit"]
