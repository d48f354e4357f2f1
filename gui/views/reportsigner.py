"""The evidence signing key for a report the app writes (History and Audit pages).

Asked on the worker thread that writes the report, once the records are read (core's
report_file asks it then). A key custody cannot give is no failure: the report is
written sealed but unsigned and says so, and the page shows why, as the CLI warns."""

from __future__ import annotations

from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.signing import SigningKeyStore
from sealcheck.core.records.chain import Signer


class CustodySigner:
    """``report_file.write``'s ``signer``: the key from custody (made on first use), or
    None, with ``why`` saying what custody said."""

    def __init__(self) -> None:
        self.why = ""

    def __call__(self) -> Signer | None:
        try:
            return SigningKeyStore().signer()
        except SealcheckError as exc:
            self.why = exc.message()
            return None
