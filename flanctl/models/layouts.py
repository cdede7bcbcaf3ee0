"""Sharding layouts by family name: which mesh axis each weight dimension lives on.

Mesh axes are `("data", "model")` (see backends/jax.py); the batch goes on `data` through
`ModelParallel(batch_dim_name="data")`. Each family holds its own rules
(`ModelFamily.layout_rules`: palm's in flanctl.models.families.palm, t5's in
flanctl.models.families.t5) or says why it has none, and builds its Keras `LayoutMap`
(`ModelFamily.layout_map`); these wrappers take a family name. A weight no rule matches is
replicated by Keras.
"""

from __future__ import annotations

from flanctl.models.families import LayoutRules, ModelFamily, get_family


def layout_rules(family: str | ModelFamily) -> LayoutRules:
    """The (path regex, axes) rules of a family, without importing Keras."""
    return get_family(family).layout_rules()


def layout_map(family: str | ModelFamily, mesh):
    """A `keras.distribution.LayoutMap` over `mesh` (a DeviceMesh with axes data, model)."""
    return get_family(family).layout_map(mesh)
