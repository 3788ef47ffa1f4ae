"""Model families, registered by name. Importing this package registers every family."""

from ensplit.models import cnn1d, densenet, mlp, resnet, resnext, vgg, wrn  # noqa: F401  (registration)
from ensplit.models.registry import (
    Family,
    count_params,
    create,
    family_names,
    get_family,
    register_family,
    with_dropout,
)

__all__ = ["Family", "count_params", "create", "family_names", "get_family", "register_family", "with_dropout"]
