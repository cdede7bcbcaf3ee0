"""Errors that the CLI turns into one line and an exit code (no traceback unless --debug)."""

from __future__ import annotations


class FlanctlError(Exception):
    """An error the user can fix; printed as one line. Exit code 1."""

    exit_code = 1


class SpecError(FlanctlError):
    """The spec is invalid; `str()` is `file:line:col: message`. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, file: str | None = None, line: int | None = None, col: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        super().__init__(str(self))

    def __str__(self) -> str:  # file:line:col: message
        where = [p for p in (self.file, self.line, self.col) if p is not None]
        prefix = ":".join(str(p) for p in where)
        return f"{prefix}: {self.message}" if prefix else self.message


class SpecErrors(SpecError):
    """Several spec errors at once (validate reports all of them)."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.col)

    def __str__(self) -> str:
        return "\n".join(SpecError.__str__(e) for e in self.errors)
