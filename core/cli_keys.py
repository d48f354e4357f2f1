"""``sealcheck key …``: the key inventory (custody in the OS keyring, tokens)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .custody import KeyStore
from .errors import KeyUnavailable, UsageError


def register(sub: Any) -> None:
    k = sub.add_parser("key", help="keys Sealcheck can use: import, list, export, remove")
    ks = k.add_subparsers(dest="key_command", metavar="ACTION")

    imp = ks.add_parser("import", help="put a PEM private key into custody (OS keyring)")
    imp.add_argument("pem", type=Path, metavar="PEM_FILE")
    imp.add_argument("--name", required=True)
    imp.add_argument("--key-passphrase-file", type=Path, help="passphrase of an encrypted PEM")
    imp.set_defaults(func=cmd_import)

    ls = ks.add_parser("list", help="every key Sealcheck can use, with fingerprints")
    ls.add_argument("--pkcs11-module", metavar="SO", help="also list this token module's keys")
    ls.add_argument("--pin-file", type=Path, help="token PIN, to see keys hidden before login")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    exp = ks.add_parser("export-public", help="print a held key's public key (PEM)")
    exp.add_argument("name")
    exp.set_defaults(func=cmd_export_public)

    rm = ks.add_parser("remove", help="remove a key from custody")
    rm.add_argument("name")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(func=cmd_remove)
    k.set_defaults(func=lambda _a: (k.print_help(), 2)[1])


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} {path}: {exc.strerror}") from None


def cmd_import(args: argparse.Namespace) -> int:
    pem = _read(args.pem, "key file")

    def passphrase() -> bytes | None:
        if args.key_passphrase_file:
            return _read(args.key_passphrase_file, "passphrase file").rstrip(b"\r\n")
        if sys.stdin.isatty():
            return getpass.getpass(f"Passphrase for {args.pem}: ").encode()
        return None

    info = KeyStore().import_pem(pem, args.name, passphrase)
    del pem
    print(f"Key {info.name!r} (RSA-{info.bits}, {info.fingerprint}) is now held in the OS keyring.")
    print(f"Use it with --key keyring:{info.name}. The file {args.pem} was not changed or copied.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
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
    if args.pkcs11_module:
        from .pkcs11key import list_token_keys

        pin = None
        if args.pin_file:
            pin_bytes = _read(args.pin_file, "PIN file").rstrip(b"\r\n")

            def pin() -> bytes | None:
                return pin_bytes

        for t in list_token_keys(args.pkcs11_module, pin):
            d = asdict(t)
            rows.append(
                {
                    "name": f"{d.get('token_label')}/{d.get('object_label') or d.get('id_hex')}",
                    "where": "PKCS#11 token",
                    "type": d.get("key_type", "RSA"),
                    "bits": d.get("bits") or d.get("size_bits"),
                    "fingerprint": d.get("fingerprint"),
                    "use": d.get("uri"),
                }
            )
    if args.json:
        print(json.dumps({"keys": rows}, indent=2))
        return 0
    if not rows:
        print("No keys held. Import one with: sealcheck key import PEM_FILE --name NAME")
        return 0
    for r in rows:
        print(f"{r['name']:<24} {r['where']:<28} {r['type']}-{r['bits']:<5} {r['fingerprint']}")
        print(f"{'':<24} use: --key '{r['use']}'")
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    sys.stdout.write(KeyStore().get(args.name).public_pem)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = KeyStore()
    info = store.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("removing a key needs confirmation: add --yes")
        answer = input(
            f"Remove key {info.name!r} ({info.fingerprint})? Backups wrapped only to this key "
            "cannot be opened without another copy of it. Type the key name to confirm: "
        )
        if answer.strip() != info.name:
            print("Not removed.")
            return 1
    store.remove(args.name)
    print(f"Key {info.name!r} removed from custody.")
    return 0
