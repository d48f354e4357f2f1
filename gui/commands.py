"""Subcommands the GUI package contributes to the ``sealcheck`` CLI.

Registered through the ``sealcheck.commands`` entry-point group so core never
imports the GUI. Every ``sealcheck`` run loads this module, so it imports what its
commands run only when they run: Qt for the app, and for the demo its harness (the
restore test, boto3, a local S3 server).
"""

from __future__ import annotations

import argparse
from typing import Any


def register_gui(sub: Any) -> None:
    p = sub.add_parser("gui", help="open the desktop application")
    # Packaging check: quit once the main window is shown (exit 0), see packaging/.
    p.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_run_gui)


def register_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the embedded demo (local S3 with sample backups)")
    p.add_argument("--no-gui", action="store_true", help="verify every demo backup headless")
    p.add_argument("--keep", action="store_true", help="leave the demo folder for inspection")
    p.set_defaults(func=_run_demo)


def _run_gui(args: argparse.Namespace) -> int:
    # Qt loads only when the app opens: every CLI run loads this module.
    from .app import main

    return main(smoke_test=args.smoke_test)


def _run_demo(args: argparse.Namespace) -> int:
    # The restore test, boto3 and the S3 server load only when the demo runs.
    from .demo.samples import run_demo

    return run_demo(no_gui=args.no_gui, keep=args.keep)
