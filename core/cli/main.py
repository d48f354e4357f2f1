"""The ``sealcheck`` command line. Other tools script against it: keep it stable.

Exit codes: 0 verified/restored; 1 the backup failed verification; 2 usage,
environment, storage or missing-key errors; 130 cancelled; 70 internal error
(a bug: the message asks for a report, no traceback is printed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..errors import ExitCode, SealcheckError
from ..records.report import ErrorInfo
from .parser import build_parser
from .termtext import echo, safe, safe_lines

INTERNAL_ERROR = 70
log = logging.getLogger("sealcheck")


class _TerminalLog(logging.Formatter):
    """Log lines reach the terminal too, quoting object names: escaped likewise,
    a traceback keeping its own line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return safe_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return safe_lines(super().formatStack(stack_info))


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalLog("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    if not getattr(args, "func", None):
        parser.print_help()
        return int(ExitCode.USAGE)
    try:
        return int(args.func(args))
    except SealcheckError as exc:
        echo(f"sealcheck: {exc.message()}", file=sys.stderr)
        if getattr(args, "json", False):
            # Scripts reading --json get an object on every path, not an empty stdout.
            info = ErrorInfo.from_exc(exc)
            print(json.dumps({"ok": False, "error": asdict(info)}, indent=2))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("sealcheck: cancelled", file=sys.stderr)
        return int(ExitCode.CANCELLED)
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return int(ExitCode.OK)
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"sealcheck: internal error ({type(exc).__name__}). This is a bug; rerun with --debug "
            "and report it.",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
