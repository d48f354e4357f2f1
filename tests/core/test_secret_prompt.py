"""A PIN is asked once, never retried (issue 11): core's one prompting helper, which
the CLI (getpass) and the GUI (its dialog) both adapt. No Qt here.

The never-retried rule is checked on a real SoftHSM2 token with a wrong PIN: the
prompt is asked once, the token sees one wrong try, and it is not locked.
"""

from __future__ import annotations

from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fixtures.pipelines import securecircle
from fixtures.softhsm import SoftHsm
from sealcheck.core.errors import KeyUnavailable
from sealcheck.core.keys.pkcs11.key import open_pkcs11_key
from sealcheck.core.keys.prompt import secret_once
from sealcheck.core.keys.spec import KeyContext, open_key


class Prompt:
    """A front end's SecretPrompt that counts how often it is asked."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, text: str) -> bytes | None:
        self.asked.append(text)
        return self.answer


def test_asked_once_and_the_same_answer_after() -> None:
    p = Prompt(b"1234")
    get = secret_once("Token PIN: ", p)
    assert [get(), get(), get()] == [b"1234"] * 3
    assert p.asked == ["Token PIN: "]


def test_a_declined_prompt_is_not_asked_again() -> None:
    p = Prompt(None)
    get = secret_once("PIN", p)
    assert get() is None and get() is None
    assert len(p.asked) == 1


def test_a_prompt_that_raised_counts_as_asked() -> None:
    calls = 0

    def ctrl_d(_text: str) -> bytes | None:
        nonlocal calls
        calls += 1
        raise EOFError

    get = secret_once("PIN", ctrl_d)
    with pytest.raises(EOFError):
        get()
    assert get() is None
    assert calls == 1


def test_a_file_wins_over_the_prompt_and_is_read_once(tmp_path: Path) -> None:
    f = tmp_path / "pin"
    f.write_bytes(b"4321\r\n")
    p = Prompt(b"typed")
    get = secret_once("PIN", p, file=f, what="PIN file")
    assert get() == b"4321"
    f.write_bytes(b"changed")
    assert get() == b"4321"
    assert p.asked == []


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    get = secret_once("PIN", Prompt(b"x"), file=tmp_path / "missing", what="PIN file")
    with pytest.raises(KeyUnavailable, match=r"cannot read the PIN file .*missing"):
        get()


def test_nothing_to_ask_gives_none() -> None:
    assert secret_once("PIN", None)() is None


def test_only_a_needed_secret_is_asked(tmp_path: Path) -> None:
    """A plain PEM never asks for its passphrase (the provider is lazy)."""
    pem = tmp_path / "k.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    p = Prompt(b"unused")
    open_key(str(pem), KeyContext(pem_passphrase=secret_once("Passphrase", p)))
    assert p.asked == []


def test_wrong_pin_asked_once_never_retried_on_a_token(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm
) -> None:
    """The CLI's shape: one PIN provider shared by every token key of a command."""
    spec = softhsm.keys["pintest"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    assert b.wrapped_key is not None
    wrapped = b.wrapped_key.read_bytes()
    p = Prompt(b"999999")
    pin = secret_once("Token PIN: ", p)
    keys = [open_pkcs11_key(spec.uri(), module=softhsm.module, pin_provider=pin) for _ in range(2)]
    said = []
    try:
        for key in (*keys, keys[0]):
            with pytest.raises(KeyUnavailable, match="wrong PIN") as ei:
                list(key.unwrap_candidates(wrapped))
            assert "999999" not in str(ei.value)
            said.append("earlier in this run" in str(ei.value))
    finally:
        for key in keys:
            key.close()
    assert len(p.asked) == 1
    # Only the first went to the token; the others were refused before any login.
    assert said == [False, True, True]
    tok = pkcs11.lib(softhsm.module).get_token(token_label="pintest")
    assert not tok.flags & pkcs11.TokenFlag.USER_PIN_LOCKED
