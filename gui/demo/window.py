"""``sealcheck demo`` with a window: the app opened on the demo's local S3 source.

The demo RSA key goes into key custody (the OS keyring) when a secure keyring
is available, and is removed again when the app closes; otherwise it is passed
to the app directly, and the demo says so. The passphrase file and the OpenPGP
key are always passed directly (custody holds RSA keys only).

The window's verification history is the demo's own: ``run_demo`` points
``SEALCHECK_DATA_DIR`` into the demo folder before the window opens, and
:func:`run_demo_gui` refuses to run without that, so demo results never land in
the user's history.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.custody import KeyStore

from ..app import run_window
from ..state.settings import KeyChoice, SourceConfig
from ..views.mainwindow import MainWindow


def demo_keys(
    keys: dict[str, Path], store: KeyStore | None = None
) -> tuple[KeyChoice, str, Callable[[], None]]:
    """The demo source's KeyChoice, a sentence saying where the key is, and a cleanup."""
    store = store or KeyStore()
    name = f"sealcheck-demo-{secrets.token_hex(3)}"
    direct = KeyChoice(
        key_specs=(str(keys["rsa"]),),
        passphrase_file=str(keys["pass"]),
        gpg_key_file=str(keys["gpg"]),
    )
    try:
        store.import_pem(keys["rsa"].read_bytes(), name)
    except SealcheckError as exc:
        why = exc.detail or exc.summary
        how = f"No secure keyring ({why.split('. ')[0]}): the demo key is passed directly."
        return direct, how, lambda: None

    def cleanup() -> None:
        try:
            store.remove(name)
        except SealcheckError:
            pass

    choice = KeyChoice(
        key_specs=(f"keyring:{name}",),
        passphrase_file=str(keys["pass"]),
        gpg_key_file=str(keys["gpg"]),
    )
    return (
        choice,
        f"The demo key is held in the OS keyring as keyring:{name} (removed on exit).",
        cleanup,
    )


def demo_source(endpoint: str, choice: KeyChoice, bucket: str) -> SourceConfig:
    return SourceConfig(
        name="Demo (local S3)",
        bucket=bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        keys=choice,
    )


def run_demo_gui(endpoint: str, keys: dict[str, Path], bucket: str) -> int:
    if not os.environ.get("SEALCHECK_DATA_DIR"):
        raise RuntimeError("the demo window needs its own SEALCHECK_DATA_DIR (see run_demo)")
    choice, how, cleanup = demo_keys(keys)
    print(how)
    print("Opening Sealcheck on the demo source; close the window to stop the demo.")
    try:
        return run_window(
            lambda: MainWindow(session_sources=[demo_source(endpoint, choice, bucket)]),
            on_shown=lambda: print(
                "Demo window open (Ctrl-C here also ends the demo and cleans up).", flush=True
            ),
        )
    finally:
        cleanup()
