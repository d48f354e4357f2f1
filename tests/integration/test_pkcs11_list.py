"""``sealcheck key list --pin-file`` with several tokens whose PINs differ.

Each test makes a private SoftHSM2 store (fixtures.softhsm.make_token_store):
tokens ``alpha`` and ``beta`` with their own PINs and clean failed-login state.
The CLI runs through OpenSC's pkcs11-spy, a real PKCS#11 module that logs each
call before passing it to SoftHSM2, so the tests count the C_Login calls the
listing made, and check with ``pkcs11-tool -L`` which token saw a wrong PIN
(SoftHSM2 sets "user PIN count low" at a wrong PIN; it never locks, so the
spy's count is what proves "at most one attempt"). No fakes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.softhsm import SoftHsm, TokenStore, find_pkcs11_spy, make_token_store, spy_calls

PINS = {"alpha": "111111", "beta": "222222"}
COUNT_LOW = "user PIN count low"


@pytest.fixture
def spy() -> str:
    path = find_pkcs11_spy()
    if path is None:
        pytest.skip("OpenSC's pkcs11-spy.so is not installed")
    return path


@pytest.fixture
def store(softhsm: SoftHsm, tmp_path: Path) -> TokenStore:
    return make_token_store(softhsm, tmp_path / "hsm", PINS)


def key_list(
    store: TokenStore, spy: str, log: Path, *args: str, json_out: bool = True
) -> tuple[int, dict, str]:
    """``key list`` through the spy: (exit code, JSON output, stderr)."""
    env = {
        **store.env,
        "PKCS11SPY": store.hsm.module,
        "PKCS11SPY_OUTPUT": str(log),
        "XDG_DATA_HOME": str(store.folder / "no-keyring-keys"),  # token rows only
    }
    cli = ["key", "list", "--pkcs11-module", spy, *args]
    r = run_cli(*cli, *(["--json"] if json_out else []), env=env)
    out = json.loads(r.stdout) if json_out and r.returncode == 0 else {}
    for pin in PINS.values():  # the PIN files' content never shows
        assert pin not in r.stdout + r.stderr
    return r.returncode, out, r.stdout + r.stderr


def names(out: dict) -> set[str]:
    return {row["name"] for row in out["keys"]}


def test_pin_scoped_by_token_label_opens_that_token_only(
    store: TokenStore, spy: str, tmp_path: Path
) -> None:
    log = tmp_path / "spy.log"
    pf = store.pin_file("alpha", PINS["alpha"])
    rc, out, _ = key_list(store, spy, log, "--pin-file", str(pf), "--token", "alpha")
    assert rc == 0
    # alpha's private-only key shows (the PIN opened alpha); beta's stays hidden.
    assert names(out) == {"alpha/rsakey", "alpha/hidden", "beta/rsakey"}
    assert out["notes"] == [
        "PIN not tried on token 'beta' (the PIN was given for token 'alpha' only): "
        "private keys not listed"
    ]
    assert spy_calls(log, "C_Login") == ["CKR_OK"]
    flags = store.token_flags()
    assert COUNT_LOW not in flags["alpha"] and COUNT_LOW not in flags["beta"]


def test_wrong_pin_tried_once_then_public_keys_and_a_note(
    store: TokenStore, spy: str, tmp_path: Path
) -> None:
    """alpha's PIN given for beta: one C_Login on beta, refused; the listing still works."""
    log = tmp_path / "spy.log"
    pf = store.pin_file("alpha", PINS["alpha"])
    rc, out, _ = key_list(store, spy, log, "--pin-file", str(pf), "--token", "beta")
    assert rc == 0
    assert names(out) == {"alpha/rsakey", "beta/rsakey"}
    assert (
        "PIN not accepted for token 'beta': private keys not listed (it was tried once and not "
        "retried: tokens lock after a few wrong PINs)"
    ) in out["notes"]
    assert len(out["notes"]) == 2  # and alpha: not tried
    # Exactly one login attempt in the whole run, and it was beta that counted it.
    assert spy_calls(log, "C_Login") == ["CKR_PIN_INCORRECT"]
    flags = store.token_flags()
    assert COUNT_LOW in flags["beta"]
    assert COUNT_LOW not in flags["alpha"]
    # The text output says it too (on stderr), exit 0.
    rc, _, text = key_list(
        store, spy, tmp_path / "spy2.log", "--pin-file", str(pf), "--token", "beta", json_out=False
    )
    assert rc == 0
    assert "Note: PIN not accepted for token 'beta': private keys not listed" in text
    assert spy_calls(tmp_path / "spy2.log", "C_Login") == ["CKR_PIN_INCORRECT"]


def test_several_tokens_without_token_the_pin_is_tried_on_none(
    store: TokenStore, spy: str, tmp_path: Path
) -> None:
    log = tmp_path / "spy.log"
    pf = store.pin_file("alpha", PINS["alpha"])
    rc, out, _ = key_list(store, spy, log, "--pin-file", str(pf))
    assert rc == 0
    assert names(out) == {"alpha/rsakey", "beta/rsakey"}
    assert len(out["notes"]) == 2
    assert all("PIN not tried on token" in n and "--token" in n for n in out["notes"])
    assert spy_calls(log, "C_Login") == []
    assert all(COUNT_LOW not in f for f in store.token_flags().values())


def test_token_named_by_uri_with_serial(store: TokenStore, spy: str, tmp_path: Path) -> None:
    rc, out, _ = key_list(store, spy, tmp_path / "a.log")
    assert rc == 0 and out["notes"] == []  # no PIN: no notes
    beta_uri = next(r["use"] for r in out["keys"] if r["name"] == "beta/rsakey")
    serial = next(p for p in beta_uri.split("?")[0].split(";") if p.startswith("serial="))
    pf = store.pin_file("beta", PINS["beta"])
    log = tmp_path / "b.log"
    rc, out, _ = key_list(store, spy, log, "--pin-file", str(pf), "--token", f"pkcs11:{serial}")
    assert rc == 0
    assert names(out) == {"alpha/rsakey", "beta/rsakey", "beta/hidden"}
    assert spy_calls(log, "C_Login") == ["CKR_OK"]


def test_token_naming_no_token_fails_before_any_login(
    store: TokenStore, spy: str, tmp_path: Path
) -> None:
    log = tmp_path / "spy.log"
    pf = store.pin_file("alpha", PINS["alpha"])
    rc, _, text = key_list(store, spy, log, "--pin-file", str(pf), "--token", "gamma")
    assert rc == 2
    assert "no PKCS#11 token with label 'gamma'" in text
    assert "'alpha'" in text and "'beta'" in text
    assert spy_calls(log, "C_Login") == []
    rc, _, text = key_list(store, spy, tmp_path / "x.log", "--token", "alpha")
    assert rc == 2 and "--pin-file" in text


def test_single_token_wrong_pin(softhsm: SoftHsm, spy: str, tmp_path: Path) -> None:
    """One token present and no --token: the PIN is for it; wrong, it is tried once."""
    one = make_token_store(softhsm, tmp_path / "one", {"solo": "333333"})
    log = tmp_path / "spy.log"
    rc, out, _ = key_list(one, spy, log, "--pin-file", str(one.pin_file("bad", "999999")))
    assert rc == 0
    assert names(out) == {"solo/rsakey"}
    assert out["notes"][0].startswith("PIN not accepted for token 'solo'")
    assert spy_calls(log, "C_Login") == ["CKR_PIN_INCORRECT"]
    # The right PIN opens it (and clears SoftHSM2's count-low flag).
    log = tmp_path / "spy2.log"
    rc, out, _ = key_list(one, spy, log, "--pin-file", str(one.pin_file("good", "333333")))
    assert rc == 0 and out["notes"] == []
    assert names(out) == {"solo/rsakey", "solo/hidden"}
    assert spy_calls(log, "C_Login") == ["CKR_OK"]
    assert COUNT_LOW not in one.token_flags()["solo"]
