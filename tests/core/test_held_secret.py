"""The coordinator's unwrap for a campaign on a cluster (issue 15, keys/held.py): a
worker's key source holds one backup's unwrapped data key, in the name of the key that
unwrapped it, and answers no other wrapped key; its repr shows no secret."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from test_shard_plan import listed

from fixtures.pipelines import RsaKey, export_secret_key, gpg_home_with_key, sh
from sealcheck.core.audit.inobject import GpgHome
from sealcheck.core.audit.plan import Operation, WorkItem
from sealcheck.core.audit.unwrap import Hints
from sealcheck.core.decrypt.gpg.packets import PKESK, SEIPD, new_format
from sealcheck.core.decrypt.gpg.reader import plan_decryption
from sealcheck.core.decrypt.gpg.session import GpgSessionKey, packets_digest
from sealcheck.core.decrypt.secrets import GpgOptions, Secrets
from sealcheck.core.errors import WrongKey
from sealcheck.core.keys.held import HeldSecret, unwrapped_from
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.records.report import ErrorInfo, LayerResult, Report, Status

SECRET = "CANARYheldsecret0123456789abcdef"


def wrap(key: RsaKey, folder: Path, name: str, oaep: bool) -> bytes:
    pad = "-pkeyopt rsa_padding_mode:oaep" if oaep else "-pkeyopt rsa_padding_mode:pkcs1"
    sh(
        f"printf %s {SECRET} | openssl pkeyutl -encrypt -pubin -inkey {key.public} {pad} -out {name}",
        folder,
    )
    return (folder / name).read_bytes()


def test_held_secret_stands_for_the_key_that_unwrapped_it(
    rsa_key: RsaKey, other_rsa_key: RsaKey, tmp_path: Path
) -> None:
    mine = PemKey.from_file(rsa_key.private)
    other = PemKey.from_file(other_rsa_key.private)
    wrapped = wrap(rsa_key, tmp_path, "w.key", oaep=True)
    (held,) = unwrapped_from([other, mine], wrapped)  # OAEP: only the key it was made for
    assert held.label == mine.label and held.fingerprint == mine.fingerprint
    assert held.modulus_bytes == mine.modulus_bytes
    (c,) = held.unwrap_candidates(wrapped)
    assert c.padding == "OAEP-SHA1" and bytes(c.secret) == SECRET.encode()
    c.secret[:] = bytes(len(c.secret))  # the caller wipes its copy, not the held one
    assert [bytes(x.secret) for x in held.unwrap_candidates(wrapped)] == [SECRET.encode()]
    # Another backup's wrapped key gets nothing from it, as a key that does not fit.
    assert list(held.unwrap_candidates(wrap(rsa_key, tmp_path, "x.key", oaep=True))) == []
    assert SECRET not in repr(held) and SECRET.encode().hex() not in repr(held)
    back = pickle.loads(pickle.dumps(held))  # what a Dask task carries
    assert [bytes(x.secret) for x in back.unwrap_candidates(wrapped)] == [SECRET.encode()]
    held.wipe()
    assert list(held.unwrap_candidates(wrapped)) == []


def test_pkcs1_unwraps_of_every_fitting_key_are_kept(
    rsa_key: RsaKey, other_rsa_key: RsaKey, tmp_path: Path
) -> None:
    """PKCS#1 v1.5 cannot be judged without the data (implicit rejection): each key's
    candidate goes to the worker under its own name; the data picks."""
    mine = PemKey.from_file(rsa_key.private)
    other = PemKey.from_file(other_rsa_key.private)
    wrapped = wrap(rsa_key, tmp_path, "w.key", oaep=False)
    held = unwrapped_from([other, mine], wrapped)
    # The other key yields a (noise) candidate only when the wrapped value is a number
    # below its modulus; one at or above it cannot be an RSA ciphertext for that key and
    # is refused outright. The random padding decides which, run by run.
    other_public = load_pem_public_key(other_rsa_key.public.read_bytes())
    assert isinstance(other_public, rsa.RSAPublicKey)
    fits_other = int.from_bytes(wrapped, "big") < other_public.public_numbers().n
    expected = [other.fingerprint, mine.fingerprint] if fits_other else [mine.fingerprint]
    assert [h.fingerprint for h in held] == expected
    secrets = [bytes(c.secret) for h in held for c in h.unwrap_candidates(wrapped)]
    assert SECRET.encode() in secrets
    assert isinstance(held[0], HeldSecret)


def test_a_hinted_padding_is_tried_alone(rsa_key: RsaKey, tmp_path: Path) -> None:
    """The padding of the previous version of a series first, alone (one RSA operation
    instead of four for PKCS#1 v1.5): an OAEP one that decodes is authenticated; a
    PKCS#1 v1.5 one is ``partial`` (OAEP not ruled out: the data decides, else the item
    runs again trying every padding); a hint that does not decode changes nothing."""
    key = PemKey.from_file(rsa_key.private)
    pkcs1, oaep = wrap(rsa_key, tmp_path, "p.key", False), wrap(rsa_key, tmp_path, "o.key", True)

    def unwrap(wrapped: bytes, hint: str | None) -> tuple[list[str], bool, bytes]:
        (held,) = unwrapped_from([key], wrapped, hint)
        (c,) = held.unwrap_candidates(wrapped)
        return held.paddings, held.partial, bytes(c.secret)

    assert unwrap(pkcs1, None) == (["PKCS#1 v1.5"], False, SECRET.encode())
    assert unwrap(pkcs1, "PKCS#1 v1.5") == (["PKCS#1 v1.5"], True, SECRET.encode())
    assert unwrap(pkcs1, "OAEP-SHA1") == (["PKCS#1 v1.5"], False, SECRET.encode())
    assert unwrap(oaep, "OAEP-SHA1") == (["OAEP-SHA1"], False, SECRET.encode())
    # A series that changed padding: the hinted PKCS#1 v1.5 gives implicit-rejection
    # noise, which the data will not confirm (the worker's run sends it back).
    paddings, partial, noise = unwrap(oaep, "PKCS#1 v1.5")
    assert (paddings, partial) == (["PKCS#1 v1.5"], True) and noise != SECRET.encode()


def test_the_coordinator_learns_a_series_padding_from_the_data(
    rsa_key: RsaKey, tmp_path: Path
) -> None:
    key = PemKey.from_file(rsa_key.private)
    pkcs1, oaep = wrap(rsa_key, tmp_path, "p.key", False), wrap(rsa_key, tmp_path, "o.key", True)
    one, two, three = (
        WorkItem.of(listed(n), endpoint=None, operation=Operation.VERIFY, strict=True)
        for n in range(3)
    )
    hints = Hints()
    full = unwrapped_from([key], pkcs1)
    hints.unwrapped(one, "s3://bkt/db/x.key", full)
    assert hints.hint("s3://bkt/db/x.key") is None  # PKCS#1 v1.5: only the data can say
    assert not hints.settle(one, report("PKCS#1 v1.5"), Secrets(keys=tuple(full)))
    assert hints.hint("s3://bkt/db/x.key") == "PKCS#1 v1.5"

    hinted = unwrapped_from([key], oaep, "PKCS#1 v1.5")  # the series changed padding
    hints.unwrapped(two, "s3://bkt/db/x.key", hinted)
    assert hints.settle(two, report(None), Secrets(keys=tuple(hinted)))  # run it again
    assert hints.hint("s3://bkt/db/x.key") is None

    hints.unwrapped(three, "s3://bkt/db/y.key", unwrapped_from([key], oaep))
    assert hints.hint("s3://bkt/db/y.key") == "OAEP-SHA1"  # authenticated: known at once


def report(padding: str | None) -> Report:
    """A worker's record: its key layer confirmed by the data, or refused (WrongKey)."""
    if padding is None:
        layer = LayerResult("key", Status.FAILED, "no key opens it")
        error = ErrorInfo("WrongKey", "key", "no key opens it", 1)
    else:
        layer = LayerResult("key", Status.OK, "confirmed by the data", {"padding": padding})
        error = None
    return Report("verify", None, None, error is None, (layer,), (), error,
                  "2026-12-07T00:00:00+00:00", 0.1, "test")  # fmt: skip


def test_a_gpg_or_cms_item_whose_secret_the_data_refuses_runs_on_the_coordinator() -> None:
    """An item shipped with a secret from its own head (audit/inobject.py) whose key
    layer fails on the worker is run again on the coordinator; one that opened is not."""
    hints = Hints()
    bad, good = (
        WorkItem.of(listed(n, paired=False), endpoint=None, operation=Operation.VERIFY, strict=True)
        for n in (4, 5)
    )
    hints.in_object(bad)
    hints.in_object(good)
    assert hints.settle(bad, report(None), None)
    assert not hints.settle(good, report("PKCS#1 v1.5"), None)
    assert not hints.settle(bad, report(None), None)  # settled once: the coordinator's run


def test_a_gpg_session_key_answers_only_its_own_message_and_shows_nothing() -> None:
    """The session key a worker gets (decrypt/gpg/session.py) is bound to its message's
    session-key packets; its repr and its pickled form's repr show no key."""
    esk = new_format(PKESK, b"\x03" + bytes(8) + b"\x01" + b"\x08\x00" + bytes(256))
    head = esk + new_format(SEIPD, b"\x01" + bytes(64))
    digest = packets_digest(head, len(esk))
    assert digest is not None
    key = bytes(range(32))
    sk = GpgSessionKey(9, key, "ABCDEF0123", len(esk), digest)
    assert sk.fits(head) and not sk.fits(head[:1] + b"\x00" + head[2:])
    assert key.hex() not in repr(sk) and "ABCDEF0123" in repr(sk)
    line = sk.line()
    assert bytes(line) == b"9:" + key.hex().upper().encode() + b"\n"
    back = pickle.loads(pickle.dumps(sk))  # as Dask ships it
    assert back.fits(head) and key.hex() not in repr(back)
    sk.wipe()
    assert sk.wiped and bytes(sk.line()) == b"9:" + b"00" * 32 + b"\n"
    other = new_format(PKESK, b"\x03" + bytes([1] * 8) + b"\x01" + b"\x08\x00" + bytes(256))
    with pytest.raises(WrongKey):  # never gpg's own home instead: the coordinator runs it
        plan_decryption(other + head[len(esk) :], None, None, obj="x", session=back)


def test_a_campaign_imports_its_gpg_key_file_once(tmp_path: Path) -> None:
    """The coordinator's gpg home for a campaign (audit/inobject.py): a --gpg-key is
    imported once into a private home, used for every backup, removed on close."""
    key_file = export_secret_key(gpg_home_with_key(tmp_path), tmp_path / "key.asc")
    home = GpgHome(GpgOptions(key_file=key_file))
    first = home.options()
    assert first.key_file is None and first.homedir is not None and first.homedir.is_dir()
    assert home.options() is first
    home.close()
    assert not first.homedir.exists()
    assert GpgHome(None).options() == GpgOptions()  # no key file: gpg's own home, as locally
