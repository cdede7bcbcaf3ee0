"""The `flanctl` command line: thin typer commands that parse, call one function, render.

Heavy libraries are imported inside the commands that need them, so `validate`, `plan` and
`schema` stay fast and framework-free.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from flanctl.errors import FlanctlError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Instruction finetuning as code: spec -> plan -> apply -> eval.",
)
data_app = typer.Typer(no_args_is_help=True, help="Look at the training data a spec produces.")
app.add_typer(data_app, name="data")

_STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _STATE["debug"] = debug


def main() -> None:
    """Console-script entry point: run the app, turn known errors into one line + exit code."""
    debug = "--debug" in sys.argv
    try:
        app(standalone_mode=False)
    except FlanctlError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = getattr(exc, "code", 0)
        sys.exit(code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else 1)
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


# Commands are added below, one function each, by room:
#   validate / schema / plan / apply  -> flanctl.spec, flanctl.plan, flanctl.runs, flanctl.train
#   data preview / data stats         -> flanctl.data
#   eval                              -> flanctl.evals
#   report                            -> flanctl.report


if __name__ == "__main__":
    main()
