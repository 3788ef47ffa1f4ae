"""Ensemble methods: each returns logits `[members, batch, classes]`.

`deep_ensemble` builds independent members trained together; `build_method` builds any registered method
(single, deep, batchensemble, mimo, mixture, grouped, multihead) of any family, and `method_param_count` /
`solve_method_width` count and size it at a parameter budget.
"""

from ensplit.ensembles.convert import replace_layers
from ensplit.ensembles.independent import (
    MemberBatchedEnsemble,
    build_member,
    deep_ensemble,
    ensemble_of,
    stack_members,
)
from ensplit.ensembles.methods import MethodModel, build_method, method_names, method_param_count, solve_method_width

__all__ = ["MemberBatchedEnsemble", "MethodModel", "build_member", "build_method", "deep_ensemble", "ensemble_of",
           "method_names", "method_param_count", "replace_layers", "solve_method_width", "stack_members"]
