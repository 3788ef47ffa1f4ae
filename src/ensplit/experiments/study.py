"""The memory-split study (Lobacheva et al. 2020): pools of networks at each width, then CNLL(n, s), power laws, the
optimal split per budget and its prediction from a few networks.

`run_study(config, folder)` trains what the folder lacks (resumable; any executor) and analyses the stored
predictions; `reanalyze(folder)` analyses an existing folder again. The command layer and the front door write
the report page from the result (`ensplit.reports.write`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensplit._version import provenance
from ensplit.analysis.study_pools import StudyAnalysis, analysis_notes, analyze_pools, summary_dict
from ensplit.data.spec import load_data
from ensplit.errors import EnsplitError
from ensplit.experiments.study_config import StudyConfig, check_resources, plan_pool_jobs, plan_tune_jobs
from ensplit.jsonable import to_jsonable
from ensplit.metrics import nll
from ensplit.runs.executors import Executor, make_executor
from ensplit.runs.folder import CONFIG_FILE, admit, execute, folder_owner, note, open_folder, read_settings
from ensplit.settings import loads_toml
from ensplit.store import ResultStore, atomic_write_text, folder_lock
from ensplit.store.results import INDEX

DEFAULT_OUT = "ensplit-study"


@dataclass
class StudyResult:
    """A study folder's analysis. `to_json()` is exactly what `ensplit study --json` prints."""

    config: StudyConfig
    folder: Path
    analysis: StudyAnalysis
    trained_jobs: int = 0
    report: Path | None = None
    _store: ResultStore | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({**summary_dict(self.analysis, self.folder), "recipe": self.config.recipe.to_json(),
                            "report": None if self.report is None else str(self.report), **provenance()})

    @property
    def store(self) -> ResultStore:
        """The folder's store (opened on first use)."""
        if self._store is None:
            self._store = ResultStore(self.folder)
        return self._store


def choose_hyperparameters(store: ResultStore, config: StudyConfig) -> dict[int, dict[str, Any]]:
    """Per width, the tuning cell with the lowest mean validation NLL of its networks."""
    labels = store.labels("val")
    choice: dict[int, dict[str, Any]] = {}
    for width in config.widths:
        by_job: dict[str, list[dict]] = defaultdict(list)
        for row in store.networks("tune", width, status="ok"):
            by_job[row["job_id"]].append(row)
        scores = []
        for job_id, rows in by_job.items():
            score = float(nll(store.log_probs(rows, "val"), labels).mean())
            train = store.job_train_config(job_id)
            scores.append((score, {"weight_decay": train["weight_decay"], "dropout": train["dropout"]}))
        if scores:
            choice[width] = min(scores, key=lambda s: s[0])[1]
    return choice


def analyze_store(store: ResultStore, config: StudyConfig) -> StudyAnalysis:
    """Analyse every width of a study folder's store (failed networks are left out and counted), with the
    config's fit objective, prediction resampling and temperature grid; the summary names the pool rule."""
    pools = []
    for width in sorted(config.widths):
        log_probs, params = store.pool(width)
        if len(log_probs):
            pools.append((width, params, log_probs))
    failed = len(store.networks("pool", status="failed"))
    lost = [w for w in config.widths if not store.networks("pool", w, status="ok") and store.networks("pool", w)]
    if lost:
        message = (f"every network of width {', '.join(map(str, lost))} diverged (loss or predictions not "
                   "finite); lower the learning rate (--lr) or check the data")
        if len(pools) < 2:
            raise EnsplitError(message)
        note(message + "; those widths are left out of the analysis")
    from ensplit.experiments.study_config import describe_pool_rule, member_params

    measured = {width: int(params) for width, params, _ in pools}  # the stored sizes (the data set's shapes)
    params = {w: measured.get(w) or member_params(config, w) for w in config.widths}
    analysis = analyze_pools(pools, store.labels(), config.temperature, config.cnll_splits, config.predict_max_n,
                             config.predict_pool, config.bootstrap, failed, objective=config.fit_objective,
                             resample=config.predict_resample, taus=config.temperature_grid,
                             pool_rule=describe_pool_rule(config, params))
    for message in analysis_notes(analysis, config.bootstrap):
        note(message)
    return analysis


def run_study(config: StudyConfig | None = None, folder: str | Path = DEFAULT_OUT, progress: bool = True,
              executor: Executor | None = None, repair: bool = False) -> StudyResult:
    """Train everything the study needs that the folder does not hold yet, then analyse. The caller writes the
    page (`ensplit.reports.write(result, folder)`).

    One run per folder (a second is refused while this one holds the folder's lock). `repair` rebuilds a
    damaged index from the stored arrays first. `config.recipe.threads` sets torch's CPU threads of this
    process (the local executor trains here; process and Ray workers always use one thread each).
    """
    folder = Path(folder)
    config = admit(config or StudyConfig(), folder, "study")  # a refused folder costs no work
    recipe = config.recipe
    recipe.apply_threads()
    device = recipe.torch_device()
    data = load_data(recipe.data)
    check_resources(config, data, device)
    with folder_lock(folder, "study"):
        run = open_folder(config, folder, "study", repair, data=data)
        store = run.store
        executor = executor or make_executor(config.executor, str(device), config.workers, config.address, progress,
                                             config.gpus_per_job)
        overrides = None
        trained = 0
        if config.tune:
            trained += execute(plan_tune_jobs(config), run, executor, progress, "tuning")
            overrides = choose_hyperparameters(store, config)
            store.set_meta("tuned", repr(overrides))
        trained += execute(plan_pool_jobs(config, overrides, data), run, executor, progress, "training pools")
        store.checkpoint()
        analysis = analyze_store(store, config)
    return StudyResult(config, folder, analysis, trained, None, store)


def folder_settings(folder: Path, store: ResultStore) -> StudyConfig:
    """A study folder's settings: its config.toml, or (when that is missing or damaged) the copy in its index,
    which is then written back to config.toml."""
    config = read_settings(folder, StudyConfig)
    if config is not None:
        return config
    text = store.get_meta("settings")
    if text is None:
        raise EnsplitError(f"{folder / CONFIG_FILE} is missing or damaged and the index holds no copy of the "
                           "settings; rerun `ensplit study` with the folder's settings")
    config = StudyConfig.from_mapping(loads_toml(text, f"the settings in {folder / INDEX}"))
    atomic_write_text(folder / CONFIG_FILE, text)
    note(f"{folder / CONFIG_FILE} was missing or damaged; restored from the copy in the index")
    return config


def reanalyze(folder: str | Path) -> StudyResult:
    """Analyse an existing study folder again (no training); the caller rewrites its page
    (`ensplit.reports.write(result, folder)`)."""
    folder = Path(folder)
    if not (folder / INDEX).exists():
        raise EnsplitError(f"{folder} is not a study folder (no {INDEX})")
    with folder_lock(folder, "report"):
        store = ResultStore(folder)
        other = folder_owner(folder)
        if other and other != "study":
            raise EnsplitError(f"{folder} is an `ensplit {other}` folder, not a study folder; rerun `ensplit {other} "
                               f"--out {folder}` with its settings to rebuild its report (nothing is retrained)")
        config = folder_settings(folder, store)
        config.recipe.apply_threads()
        if store.fingerprint not in (None, config.fingerprint()):
            raise EnsplitError(f"{folder / CONFIG_FILE} does not match the results in the index (fingerprint "
                               f"{store.fingerprint}); restore the folder's config.toml")
        damaged = store.verify()
        if damaged:
            raise EnsplitError(f"{len(damaged)} stored job(s) of {folder} had missing or damaged arrays and are now "
                               "marked unfinished; rerun `ensplit study` with the folder's settings to retrain them")
        if not store.networks("pool", status="ok"):
            raise EnsplitError(f"{folder} holds no finished networks yet; run `ensplit study` first")
        analysis = analyze_store(store, config)
    return StudyResult(config, folder, analysis, 0, None, store)
