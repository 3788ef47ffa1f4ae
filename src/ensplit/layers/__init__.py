"""Layer sets: the linear, conv, norm and dropout factories a family is built from.

Every family is written once against a `LayerSet`; ensemble methods swap the set (or convert a built
model) instead of rewriting architectures. Activations may carry any number of leading dimensions:
a plain network sees `[batch, ...]`, a member-batched ensemble sees `[members, batch, ...]`. Families
therefore use the shape-agnostic helpers in `ensplit.layers.ops` for pooling and flattening.
"""

from ensplit.layers.base import PLAIN, LayerSet
from ensplit.layers.plain import Conv, Dropout, Norm

__all__ = ["PLAIN", "Conv", "Dropout", "LayerSet", "Norm"]
