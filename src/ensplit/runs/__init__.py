"""Running training jobs: config -> plan (stable job ids) -> executors (local, process pool, Ray) -> the store.
Shared by every experiment that trains many networks."""
