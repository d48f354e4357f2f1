"""The coordinator's unwrap for a campaign on a cluster (issue 15, keys/held.py): a
worker's key source holds one backup's unwrapped data key, in the name of the key that
unwrapped it, and answers no other wrapped key; its repr shows no secret."""

from __future__ import annotations

import pickle
from pathlib import Path

from fixtures.pipelines import RsaKey, sh
from sealcheck.core.keys.held import HeldSecret, unwrapped_from
from sealcheck.core.keys.pem import PemKey

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
    assert [h.fingerprint for h in held] == [other.fingerprint, mine.fingerprint]
    secrets = [bytes(c.secret) for h in held for c in h.unwrap_candidates(wrapped)]
    assert SECRET.encode() in secrets
    assert isinstance(held[0], HeldSecret)
