"""``KeySession.forget()`` logs a token out (review finding 2), on a real SoftHSM2 token.

A PKCS#11 login belongs to the process and the token, not to one session: while any
session of the process stays logged in, every other one sees the token's private
objects. So the check runs in a child process with a private token store of its own
(fixtures.softhsm.make_token_store), where no other test's session can hold a login:
its token has ``hidden``, a private key whose public object was deleted, which a fresh
session without login sees only while the token is logged in. The wrapped key is
made by ``openssl pkeyutl`` with the token key's public half. No Qt: KeySession is the
GUI's, but plain Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures.softhsm import SoftHsm, make_token_store

LABEL, PIN = "forget", "314159"

# Runs in the child: argv = module, token label, PIN, wrapped key file, the secret file.
CHILD = r"""
import json, sys
from pathlib import Path
import pkcs11
from pkcs11 import Attribute, ObjectClass
from sealcheck.gui.state.keysession import KeySession
from sealcheck.gui.state.settings import KeyChoice

module, label, pin, wrapped, secret = sys.argv[1:6]
wrapped, secret = Path(wrapped).read_bytes(), Path(secret).read_bytes()
asked = []

def ask_pin(prompt):
    asked.append(prompt)
    return pin.encode()

def unlocked():
    # A fresh session, no login: it sees the private-only key only while the token is
    # logged in for this process.
    with pkcs11.lib(module).get_token(token_label=label).open() as s:
        found = s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: "hidden"})
        return any(True for _ in found)

def opens(session):
    key = session.secrets(choice).keys[0]
    return key, any(bytes(c.secret) == secret for c in key.unwrap_candidates(wrapped))

session = KeySession(lambda _p: None, ask_pin)
choice = KeyChoice(key_specs=(f"pkcs11:token={label};object=rsakey;type=private",),
                   pkcs11_module=module)
out = {"unlocked_at_start": unlocked()}
held, out["first"] = opens(session)  # held as a job's Secrets holds it
out["asked_first"] = len(asked)
_, out["again"] = opens(session)
out["asked_again"] = len(asked)
out["unlocked_in_use"] = unlocked()
session.forget()
out["unlocked_after_forget"] = unlocked()
_, out["after_forget"] = opens(session)
out["asked_after_forget"] = len(asked)
session.forget()
print(json.dumps(out))
"""


def test_forget_logs_the_token_out_and_the_pin_is_asked_again(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    store = make_token_store(softhsm, tmp_path / "hsm", {LABEL: PIN})
    public = softhsm.keys["rsakey"].public  # the store's rsakey is this key
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"forget-me-data-key-0123456789abcdef")
    wrapped = tmp_path / "wrapped.bin"
    subprocess.run(
        ["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(public),
         "-in", str(secret), "-out", str(wrapped)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-c", CHILD, softhsm.module, LABEL, PIN, str(wrapped), str(secret)],
        capture_output=True,
        text=True,
        env=store.env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["unlocked_at_start"] is False
    assert got["first"] and got["asked_first"] == 1
    assert got["again"] and got["asked_again"] == 1  # kept for the session: asked once
    assert got["unlocked_in_use"] is True  # the check sees a login when there is one
    # A job still holds the key, yet forgetting ends the login ...
    assert got["unlocked_after_forget"] is False
    # ... and the token, used again, asks for the PIN.
    assert got["after_forget"] and got["asked_after_forget"] == 2
