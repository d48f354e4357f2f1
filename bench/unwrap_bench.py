"""The coordinator's unwrap rate on a Dask campaign (issue 15; a script, not a timed test).

On a cluster the coordinator unwraps every item's data key itself (core/audit/unwrap.py,
keys/held.py) on one thread ahead of the workers, so its unwrap rate bounds the
campaign's item rate. This measures ``unwrapped_from`` (what the coordinator does per
item, the wrapped key already read) over N synthetic wrapped keys:

* a PEM key (RSA-4096, made by openssl), secrets wrapped with PKCS#1 v1.5 (as
  ``openssl rsautl`` does: three OAEP tries fail first, then the v1.5 unwrap) and with
  OAEP-SHA256 (``pkeyutl -pkeyopt rsa_padding_mode:oaep``);
* the same RSA-4096 key on a SoftHSM2 token (tests/fixtures/softhsm.py), through
  python-pkcs11, serial as a token is.

    .venv/bin/python bench/unwrap_bench.py --items 2000 --token-items 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def rate(keys: list, wrapped: list[bytes], hint: str | None = None) -> tuple[float, float]:
    from sealcheck.core.keys.held import unwrapped_from

    t = time.perf_counter()
    for w in wrapped:
        held = unwrapped_from(keys, w, hint)
        assert held, "nothing unwrapped"
        for h in held:
            h.wipe()
    took = time.perf_counter() - t
    return len(wrapped) / took, took / len(wrapped) * 1000


def wrap_all(public: Path, n: int, oaep: bool) -> list[bytes]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    pub = serialization.load_pem_public_key(public.read_bytes())
    pad = (
        padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        if oaep
        else padding.PKCS1v15()
    )
    # A 44-character base64 secret, as `openssl rand -base64 32` gives the producers.
    return [pub.encrypt(os.urandom(33).hex()[:44].encode(), pad) for _ in range(n)]  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--token-items", type=int, default=500)
    args = ap.parse_args()

    from fixtures.pipelines import make_rsa_key
    from fixtures.softhsm import _build, _find_module
    from sealcheck.core.keys.pem import PemKey
    from sealcheck.core.keys.pkcs11.key import open_pkcs11_key

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        key = make_rsa_key(Path(tmp) / "k", "bench4096", 4096)
        pem = PemKey.from_file(key.private)
        for name, oaep in (("PKCS#1 v1.5", False), ("OAEP-SHA256", True)):
            w = wrap_all(key.public, args.items, oaep)
            per_s, ms = rate([pem], w)
            print(f"PEM RSA-4096, {name}: {args.items} items, {per_s:.0f}/s ({ms:.2f} ms each)")
            # Its series' padding known (audit.unwrap.Hints): that padding alone first.
            per_s, ms = rate([pem], w, name)
            print(
                f"PEM RSA-4096, {name}, hinted: {args.items} items, {per_s:.0f}/s "
                f"({ms:.2f} ms each)"
            )
        module = _find_module()
        if module is None:
            print("SoftHSM2 not installed: token not measured")
            return
        hsm = _build(Path(tmp) / "hsm", module, None)
        os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
        spec = hsm.keys["rsa4096"]
        tok = open_pkcs11_key(spec.uri(), module=module, pin_provider=lambda: hsm.pin.encode())
        try:
            for name, oaep in (("PKCS#1 v1.5", False), ("OAEP-SHA256", True)):
                w = wrap_all(spec.public, args.token_items, oaep)
                per_s, ms = rate([tok], w)
                print(
                    f"SoftHSM2 RSA-4096, {name}: {args.token_items} items, {per_s:.0f}/s "
                    f"({ms:.2f} ms each)"
                )
        finally:
            tok.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
