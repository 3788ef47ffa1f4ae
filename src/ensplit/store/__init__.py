"""Storage: a run folder's index and prediction arrays, trajectory checkpoints, `.npz` pools, the folder lock.

Nothing here imports a later stage; nothing here unpickles (arrays are read with `allow_pickle=False`,
weights are safetensors).
"""

from ensplit.files import atomic_save_npy, atomic_write_text, file_sha256
from ensplit.store.lock import folder_lock
from ensplit.store.results import ResultStore, git_commit

__all__ = ["ResultStore", "atomic_save_npy", "atomic_write_text", "file_sha256", "folder_lock", "git_commit"]
