"""Reading the suites' and predictions' text files with one-line errors that say where."""

from __future__ import annotations

from pathlib import Path

from flanctl.errors import FlanctlError


def read_utf8(path: str | Path) -> str:
    """The file's text; a byte that is not UTF-8 is reported with its line and column."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise FlanctlError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise FlanctlError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FlanctlError(f"{path}:{line}:{col}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None
