"""The OpenPGP opener: public-key (``gpg -e``) and passphrase (``gpg --symmetric``).

gpg proves the key and the integrity (MDC or AEAD tags) only at the end of the
data, so both layers are recorded then; until then a run that stops says how
far gpg got.
"""

from __future__ import annotations

from ...plumbing.streams import Tally
from ...records.report import LayerResult, Status
from ..opener import EvidenceSink, Opened, OpenRequest
from .reader import GpgDecryptReader, plan_decryption


def open_gpg(req: OpenRequest, ev: EvidenceSink) -> Opened:
    src, secrets = req.src, req.secrets
    assert req.fmt is not None
    ev.formats.append(req.fmt.value)
    plan = plan_decryption(
        req.head, secrets.gpg, secrets.passphrase, obj=src.name, session=secrets.gpg_session
    )
    home_cm = plan.home
    home = home_cm.__enter__()

    def close_home() -> None:
        home_cm.__exit__(None, None, None)

    req.closers.append(close_home)
    reader = GpgDecryptReader(
        req.start_fetch(),
        home=home,
        passphrase=plan.passphrase,
        cancel=req.cancel,
        obj=src.name,
        symmetric=plan.symmetric,
        session=plan.session,
    )
    req.closers.insert(0, reader.close)
    # gpg reports the key it used, and the integrity check, only at the end.
    out = Tally(reader)

    def gpg_results() -> dict[str, LayerResult]:
        res = reader.result
        if plan.symmetric:
            key = LayerResult(
                "key",
                Status.OK,
                "gpg derived the session key from the passphrase (--passphrase-file; "
                f"{res.s2k or 'S2K'}) and the data confirmed it",
                {"key": "passphrase file", "symmetric": True, "s2k": res.s2k},
            )
        else:
            # Given the session key (a campaign's worker), gpg names no key: the one
            # that recovered it on the coordinator is named, as a run with it would.
            used = res.used_key or (plan.session.used_key if plan.session else None)
            key = LayerResult(
                "key",
                Status.OK,
                f"gpg unwrapped the session key with key {used or '?'}",
                {"recipients": res.recipients},
            )
        integrity = (
            ", AEAD tags verified"
            if res.aead
            else ", modification detection code verified"
            if res.mdc
            else ""
        )
        cipher = LayerResult(
            "cipher",
            Status.OK,
            "OpenPGP decryption OK" + integrity,
            {
                "gpg_status": [
                    s
                    for s in res.status
                    if s.split()[0] in ("DECRYPTION_INFO", "DECRYPTION_OKAY", "GOODMDC")
                ]
            },
        )
        return {"key": key, "cipher": cipher}

    def gpg_partial(layer: str) -> str | LayerResult | None:
        if out.eof:  # gpg ended with success: its own verdict is in
            return gpg_results()[layer]
        if not out.bytes:
            return None
        if layer == "key" and plan.symmetric:
            return (
                f"gpg decrypted {out.bytes} bytes with the session key from the passphrase; "
                "the data confirms it at its end (MDC), which was not reached"
            )
        if layer == "key":
            return (
                f"gpg decrypted {out.bytes} bytes, so it held a session key; which key "
                "unwrapped it is reported at the end of the data, which was not reached"
            )
        return (
            f"gpg decrypted {out.bytes} bytes without error; the end of the data, where "
            "its integrity check (MDC) is made, was not reached"
        )

    ev.partial["key"] = lambda: gpg_partial("key")
    ev.partial["cipher"] = lambda: gpg_partial("cipher")

    def gpg_done() -> None:
        req.source_done()
        ev.layers.update(gpg_results())

    return Opened(out, gpg_done)
