"""Ensemble methods: each returns logits `[members, batch, classes]`."""

from ensplit.ensembles.convert import replace_layers
from ensplit.ensembles.independent import MemberBatchedEnsemble, build_member, deep_ensemble, stack_members

__all__ = ["MemberBatchedEnsemble", "build_member", "deep_ensemble", "replace_layers", "stack_members"]
