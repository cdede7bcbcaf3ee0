"""The spec room: the pydantic schema, safe YAML loading with positions, `extends:`,
`--set` overrides, cross-field checks, and the JSON Schema / Markdown reference.

Imports only pydantic and PyYAML (and the pure-fact catalog), so `validate` stays fast.
"""

from flanctl.spec.loader import LoadedSpec, load_spec, resolve_path
from flanctl.spec.models import API_VERSION, Spec

__all__ = ["API_VERSION", "LoadedSpec", "Spec", "load_spec", "resolve_path"]
