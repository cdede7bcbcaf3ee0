"""The run directory: where one run keeps its spec, plan, state, metrics and checkpoints.

Layout (DESIGN.md): `spec.yaml`, `plan.json`, `state.json`, `metrics.jsonl`, `tb/`,
`checkpoints/step_<n>/`, `evals/<suite>.json`, `export/`. Stdlib only, so the plan layer can
read a run's state to diff against it without importing anything heavy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError

_STEP_DIR = re.compile(r"^step_(\d+)$")
LOCK_NAME = ".lock"


#: Fields of state.json that flanctl reads back, with their check (a hand-edited or damaged
#: file then fails with one line here instead of a TypeError somewhere later).
_STATE_FIELDS = (
    ("step", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
    ("status", lambda v: isinstance(v, str), "a string"),
    ("history", lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v), "a list of objects"),
    ("checkpoint", lambda v: v is None or isinstance(v, str), "a path string"),
)


class RunDir:
    """Paths and state of one run directory (`runs/<name>/`).

    Example:
        >>> run = RunDir("runs/demo")
        >>> with run.lock():
        ...     run.write_state({"status": "planned", "step": 0})
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tb_dir(self) -> Path:
        return self.root / "tb"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def evals_dir(self) -> Path:
        return self.root / "evals"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def checkpoint_path(self, step: int) -> Path:
        """Final name of the checkpoint of `step` (writers use a temporary name, then rename)."""
        return self.checkpoints_dir / f"step_{step}"

    def exists(self) -> bool:
        """True when the run was applied at least once (it has a state file)."""
        return self.state_path.is_file()

    # ------------------------------------------------------------------ state
    def read_state(self) -> dict[str, Any]:
        """The state dict, or `{}` for a run that was never applied."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            raise FlanctlError(f"{self.state_path}: state file is not UTF-8 text (byte {exc.start}); delete it to let apply rebuild it from the checkpoints") from None
        except OSError as exc:
            raise FlanctlError(f"{self.state_path}: cannot read the state file ({exc.strerror}); make it a readable file or delete it") from None
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FlanctlError(f"{self.state_path}: state file is not valid JSON ({exc.msg}); delete it to start the run afresh") from exc
        if not isinstance(state, dict):
            raise FlanctlError(f"{self.state_path}: state file must hold a JSON object; delete it to start the run afresh")
        for key, ok, want in _STATE_FIELDS:
            if key in state and not ok(state[key]):
                raise FlanctlError(
                    f"{self.state_path}: field '{key}' must be {want}, got {json.dumps(state[key])[:40]}; "
                    "fix it, or delete state.json to let apply rebuild it from the checkpoints"
                )
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically (a crash leaves the old or the new one, never half)."""
        write_json_atomic(self.state_path, state)

    def update_state(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the state and write it; returns the new state."""
        state = {**self.read_state(), **changes}
        self.write_state(state)
        return state

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[tuple[int, Path]]:
        """Completed checkpoints as (step, path), oldest first; temporary names are ignored."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for child in self.checkpoints_dir.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        """(step, path) of the newest completed checkpoint, or None."""
        found = self.checkpoints()
        return found[-1] if found else None

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's exclusive lock; a second holder (any process) gets `FlanctlError`.

        An advisory `fcntl.flock` on `<run>/.lock`: the kernel drops it when the holder exits,
        so a crashed apply never leaves a stale lock behind.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                raise FlanctlError(
                    f"run {self.root} is locked by another apply{holder}; wait for it to finish or stop it"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_holder(fd: int) -> str:
    """' (pid N)' from the lock file, or '' when it cannot be read."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as JSON to a temporary file in the same folder, then rename it into place."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary sibling and `os.replace` it over `path` (atomic on POSIX).

    Only a regular file (or nothing) is ever replaced: a symlink is followed and its target
    written; a character device (`--out /dev/null`) is written in place; a directory, FIFO,
    socket or block device is refused with a one-line `FlanctlError`. Renaming over them would
    destroy them (as root, `--out /dev/null` used to replace the device node with a file).
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise FlanctlError(f"{path}: cannot write here ({exc.strerror}); choose another path") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISCHR(mode):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            return
        kind = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISBLK: "a block device"}
        what = next((name for test, name in kind.items() if test(mode)), "not a regular file")
        raise FlanctlError(f"{path}: is {what}, not a regular file; flanctl writes only files here, choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
