"""The experiments: one module per question (study, compare, designspace, landscape, collegial), each
taking a recipe and returning a typed result whose `to_json()` is what its command prints."""
