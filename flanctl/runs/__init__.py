"""Run directories: layout, atomic state file, exclusive lock, last-run record (stdlib only)."""

from flanctl.runs.last_run import last_run, record_last_run
from flanctl.runs.run_dir import RunDir, write_json_atomic, write_text_atomic

__all__ = ["RunDir", "last_run", "record_last_run", "write_json_atomic", "write_text_atomic"]
