"""``sealcheck key …``: the key inventory (custody in the OS keyring, tokens).

``key list --pin-file F`` unlocks one token, never more: the one ``--token``
names (a label or a ``pkcs11:`` URI), or without ``--token`` the only token
present. With several tokens and no ``--token`` the PIN is tried on none, since
a PIN meant for one token is a wrong try, counted toward lockout, on another
(pkcs11list.py). A token that refuses the PIN is tried once, listed with its
public objects and a note, and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import KeyUnavailable, UsageError
from ..keys.custody import KeyStore
from ..keys.pkcs11.inventory import list_tokens
from ..keys.signing import SigningKeyStore
from .common import pem_passphrase
from .termtext import echo, safe


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} {path}: {exc.strerror}") from None


def cmd_import(args: argparse.Namespace) -> int:
    pem = _read(args.pem, "key file")

    passphrase = pem_passphrase(args, str(args.pem), "passphrase file")
    info = KeyStore().import_pem(pem, args.name, passphrase)
    del pem
    echo(f"Key {info.name!r} (RSA-{info.bits}, {info.fingerprint}) is now held in the OS keyring.")
    echo(f"Use it with --key keyring:{info.name}. The file {args.pem} was not changed or copied.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.token and not (args.pkcs11_module and args.pin_file):
        raise UsageError(
            "--token says which token the --pin-file PIN is for: give --pkcs11-module and "
            "--pin-file too"
        )
    rows: list[dict[str, Any]] = []
    for h in KeyStore().list():
        rows.append(
            {
                "name": h.name,
                "where": h.where,
                "type": "RSA",
                "bits": h.bits,
                "fingerprint": h.fingerprint,
                "use": f"keyring:{h.name}",
            }
        )
    notes: list[str] = []
    if args.pkcs11_module:
        pin = None
        if args.pin_file:
            pin_bytes = _read(args.pin_file, "PIN file").rstrip(b"\r\n")
            if not pin_bytes:
                raise UsageError(f"the PIN file {args.pin_file} is empty")

            def pin() -> bytes | None:
                return pin_bytes

        for tok in list_tokens(args.pkcs11_module, pin, pin_for=args.token):
            if tok.note:
                notes.append(tok.note)
            for t in tok.keys:
                rows.append(
                    {
                        "name": f"{t.token_label}/{t.object_label or t.id_hex}",
                        "where": "PKCS#11 token",
                        "type": t.key_type,
                        "bits": t.size_bits,
                        "fingerprint": t.fingerprint,
                        "use": t.uri,
                    }
                )
    signing = SigningKeyStore().info()
    if args.json:
        evidence = (
            None if signing is None else {"type": "Ed25519", "fingerprint": signing.fingerprint}
        )
        print(json.dumps({"keys": rows, "notes": notes, "evidence_signing": evidence}, indent=2))
        return 0
    for note in notes:
        echo(f"Note: {note}", file=sys.stderr)
    if not rows:
        echo("No keys held. Import one with: sealcheck key import PEM_FILE --name NAME")
        return 0
    for r in rows:
        echo(f"{r['name']:<24} {r['where']:<28} {r['type']}-{r['bits']:<5} {r['fingerprint']}")
        echo(f"{'':<24} use: --key '{r['use']}'")
    if signing is not None:
        echo(
            f"{'(evidence signing)':<24} {'OS keyring + encrypted file':<28} "
            f"Ed25519   {signing.fingerprint}"
        )
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    if args.signing == bool(args.name):
        raise UsageError("give a key NAME or --signing (not both)")
    if args.signing:
        signer = SigningKeyStore().signer()
        echo(f"evidence signing key (Ed25519) {signer.fingerprint}", file=sys.stderr)
        sys.stdout.write(signer.public_pem)
        return 0
    sys.stdout.write(KeyStore().get(args.name).public_pem)
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    info = KeyStore().rename(args.name, args.new_name)
    echo(f"Key {args.name!r} is now held as {info.name!r}: use it with --key keyring:{info.name}.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = KeyStore()
    info = store.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("removing a key needs confirmation: add --yes")
        answer = input(
            safe(
                f"Remove key {info.name!r} ({info.fingerprint})? Backups wrapped only to this key "
                "cannot be opened without another copy of it. Type the key name to confirm: "
            )
        )
        if answer.strip() != info.name:
            echo("Not removed.")
            return 1
    store.remove(args.name)
    echo(f"Key {info.name!r} removed from custody.")
    return 0
