"""The one place where errors become words for the user.

Core raises typed errors whose docstring is a default sentence; a report
carries them as ``ErrorInfo(kind, layer, message, exit_code)``. Everything the
GUI shows about a failure (row tooltip, job panel, dialogs, status bar) comes
from :func:`describe`, so the same failure reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealcheck.core.audit.cluster import ClusterUnavailable
from sealcheck.core.audit.merge import MergeRefused
from sealcheck.core.audit.plan import PlanError
from sealcheck.core.audit.results import ResultsError
from sealcheck.core.decrypt.xbkey import KmsDecryptFailed, XbcryptKeyInvalid, XbcryptKeyNeeded
from sealcheck.core.errors import (
    AccessDenied,
    BackupFailed,
    Cancelled,
    DestinationError,
    IncompleteDump,
    IntegrityError,
    KeyNotUsable,
    KeyUnavailable,
    MalformedKeyObject,
    MissingTool,
    NotAPrivateKey,
    ObjectNotFound,
    PassphraseNeeded,
    SaveFailed,
    SealcheckError,
    SizeLimitExceeded,
    StorageError,
    TransferCorrupted,
    TransientStorageError,
    TruncatedBackup,
    UnsupportedFormat,
    UsageError,
    WrongKey,
    WrongPassphrase,
)
from sealcheck.core.keys.custody import BadKeyName, DuplicateKey, InsecureKeyring
from sealcheck.core.payload.info import PayloadNotChecked
from sealcheck.core.physical.complete import BackupIncomplete
from sealcheck.core.physical.pages import PageChecksumError
from sealcheck.core.plumbing.relpath import UnsafeMemberPath
from sealcheck.core.records.evidence_check import ReportUnreadable
from sealcheck.core.records.history import HistoryError
from sealcheck.core.records.report import ErrorInfo, Report, Status
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.restoretest.errors import (
    ArchiveRestoreFailed,
    ChecksFailed,
    ConfinementUnavailable,
    DumpCutShort,
    DumpRefused,
    InstanceFailed,
    LimitExceeded,
    LoadFailed,
    NotPreparable,
    NotRestorable,
    PreparedDataUnreadable,
    PreparedServerFailed,
    PrepareFailed,
    ServerError,
    ServerSoftwareMissing,
    ServerUnreachable,
)
from sealcheck.core.rotation.gpgresume import RecordedKeyChanged, ResumeContradicts
from sealcheck.core.rotation.journal import JournalError
from sealcheck.core.rotation.newkey import (
    NoPrivateHalf,
    NoProofOfPossession,
    WeakNewKey,
    WrongNewKeyPassphrase,
)
from sealcheck.core.rotation.opener import CannotOpen
from sealcheck.core.rotation.store import (
    AlreadyExists,
    ConditionsIgnored,
    LockHeld,
    VersioningNotEnabled,
)
from sealcheck.core.storage.listing import FolderNotFound, ListingDenied
from sealcheck.core.storage.s3.errors import BucketNotFound, EndpointUnreachable, WrongRegion

INTERNAL_ERROR = 70  # the CLI's code for a bug: no verdict on the backup either


@dataclass(frozen=True)
class UserMessage:
    headline: str  # what failed, one short sentence
    layer: str | None  # which layer, in words
    advice: str  # what to try
    details: str  # the full technical text, for the "Details" expander
    exit_code: int  # the CLI's: 1 the backup failed, 2 a setup problem (no verdict), ...

    @property
    def verdict(self) -> Verdict:
        return Verdict.of(self.exit_code)

    @property
    def backup_is_bad(self) -> bool:
        """True: the backup itself failed (not the environment)."""
        return self.verdict is Verdict.FAILED

    def one_line(self) -> str:
        where = f" ({self.layer})" if self.layer else ""
        return f"{self.headline}{where}"


LAYER_WORDS = {
    "source": "downloading the backup",
    "key": "unwrapping the key",
    "cipher": "decrypting",
    "decompress": "decompressing",
    "payload": "checking the dump is complete",
    "member-cipher": "decrypting the backup's files",
    "member-decompress": "decompressing the backup's files",
    "backup": "checking the physical backup is complete",
    "pages": "checking the database pages",
    "hashes": "hashing",
    "destination": "writing the restored file",
    "database": "loading into a test database",
}

# What each layer proves, as a reader would say it (the Details pane).
LAYER_TITLES = {
    "source": "Download",
    "key": "Key unwrap",
    "cipher": "Decryption and padding",
    "decompress": "Decompressor check",
    "payload": "Dump complete",
    "member-cipher": "Files decrypted (xbcrypt)",
    "member-decompress": "Files decompressed (qpress)",
    "backup": "Physical backup complete",
    "pages": "InnoDB page checksums",
    "hashes": "Hashes",
    "destination": "Restored file",
    "database": "Test database",
}

STATUS_WORDS = {
    Status.OK: "proved",
    Status.FAILED: "FAILED",
    Status.WARNING: "proved, with a warning",
    Status.SKIPPED: "not applicable",
    Status.NOT_REACHED: "not reached",
    Status.INCOMPLETE: "not completed",
    Status.NOT_CHECKED: "could not check",
}

# The state of a version whose latest run could not check it (verdict.py).
NOT_CHECKED_TITLE = "not checked: setup problem"


# (headline, advice) per error class; the most specific class wins. Every error class
# in core has its own entry (tests/gui/test_errortext_classes.py walks core for them),
# so a kind stored in a report by name always finds its class here.
_WORDS: dict[type[SealcheckError], tuple[str, str]] = {
    WrongKey: (
        "The key does not open this backup",
        "Pick the key this backup was encrypted for (Keys page), or check that the wrapped-key "
        "version belongs to this data version.",
    ),
    MalformedKeyObject: (
        "The wrapped-key object is damaged or is not a wrapped key",
        "Check the key object next to the backup in the Versions list; an older version may "
        "be intact.",
    ),
    IntegrityError: (
        "The backup is corrupt or was tampered with",
        "Try an older version of this backup, and check the storage for bit rot.",
    ),
    TruncatedBackup: (
        "The backup is cut short",
        "The upload or the producer stopped early. Use an older version.",
    ),
    IncompleteDump: (
        "The dump inside the backup is incomplete",
        "The dump program did not finish (killed, disk full, lost connection). Use an older "
        "version and check the backup job's logs.",
    ),
    UnsupportedFormat: (
        "Sealcheck does not recognise this backup's format",
        "Check the source is a backup; for openssl enc -nosalt or -K/-iv backups use the "
        "command line's --raw-key-file/--iv.",
    ),
    SizeLimitExceeded: (
        "The backup expands beyond the size limit",
        "It may be a decompression bomb; inspect it on an isolated machine.",
    ),
    KeyUnavailable: (
        "The key needed for this backup is not available",
        "Add the key on the Keys page (import a PEM, choose a token key, or a passphrase "
        "file) and verify again.",
    ),
    KeyNotUsable: (
        "This key cannot unwrap a data key",
        "It has no private part here, or may not decrypt. Pick the private key itself (a "
        "PEM, a held key, or a token key allowed to decrypt) on the Keys page.",
    ),
    WrongPassphrase: (
        "The passphrase does not open this private key",
        "Type the key's passphrase again (it is the one the key file was encrypted with).",
    ),
    PassphraseNeeded: (
        "This private key is encrypted: its passphrase is needed",
        "Type the passphrase the key file was encrypted with.",
    ),
    NotAPrivateKey: (
        "This file is not a private key",
        "Choose the private key file (PEM or DER, PKCS#1 or PKCS#8), not a public key, "
        "certificate or backup.",
    ),
    BadKeyName: (
        "This key name cannot be used",
        "Choose another: letters, digits, '.', '_' or '-' (at most 64), not a name already held.",
    ),
    DuplicateKey: (
        "This key is already held under another name",
        "Use the name it is held under (the details say which), or rename that one.",
    ),
    InsecureKeyring: (
        "No secure OS keyring is available",
        "Start a Secret Service (GNOME Keyring, KWallet) in your session, or use the PEM "
        "file directly.",
    ),
    MissingTool: ("A program Sealcheck needs is not installed", "Install it and try again."),
    # Storage errors in the words of what is wrong (core/storage/s3/, core/storage/listing.py).
    BucketNotFound: (
        "Bucket not found: check the bucket name",
        "Edit the source (Ctrl+E) to correct the bucket name; Test connection checks it.",
    ),
    EndpointUnreachable: (
        "Cannot reach the endpoint",
        "Edit the source (Ctrl+E) to correct the endpoint URL; Test connection checks it.",
    ),
    WrongRegion: (
        "Wrong region: the bucket is in another region",
        "Edit the source (Ctrl+E) to set its Region; Test connection checks it.",
    ),
    ListingDenied: (
        "Access denied: these credentials may not list this bucket",
        "Give the source's AWS profile s3:ListBucketVersions on the bucket (and "
        "s3:GetObject, s3:GetObjectVersion to verify).",
    ),
    FolderNotFound: (
        "No such file or folder",
        "The folder may have moved, or its drive may not be mounted; Edit the source "
        "(Ctrl+E) to change it.",
    ),
    ObjectNotFound: (
        "The object or version no longer exists",
        "Refresh the list: it may have been deleted or expired by a lifecycle rule.",
    ),
    AccessDenied: (
        "Access to the storage was denied",
        "Check the source's AWS profile and its permissions (s3:GetObject, "
        "s3:GetObjectVersion, s3:ListBucketVersions).",
    ),
    TransientStorageError: (
        "The storage kept failing",
        "Check the network and the endpoint URL, then try again.",
    ),
    TransferCorrupted: (
        "The download was corrupted in transit",
        "Try again; if it repeats, the store or a proxy is altering data.",
    ),
    StorageError: ("The storage could not be read", "Check the source settings and try again."),
    DestinationError: (
        # A restored backup, an extracted folder or an exported report: the same checks.
        "The file could not be written",
        "Choose another file name or a folder with enough free space, or allow replacing the file.",
    ),
    SaveFailed: (
        "Sealcheck could not save one of its files",
        "Check the free space and the permissions of the folder named in the details; the "
        "file is as it was before.",
    ),
    UsageError: ("Sealcheck cannot do that as asked", "Check the source and key settings."),
    Cancelled: ("Cancelled", "Nothing was left behind; start it again when you want."),
    # The restore test (core/restoretest/errors.py).
    LoadFailed: (
        "The dump did not load: the database rejected a statement",
        "The details name the statement and its line. Check the dump against the server "
        "version it was made for; if an older version loads, compare the two.",
    ),
    DumpCutShort: (
        "The dump ends in the middle of a statement",
        "The dump program stopped early (killed, disk full, lost connection). Use an older "
        "version and check the backup job's logs.",
    ),
    ChecksFailed: (
        "The restored database does not match the dump",
        "Rows or objects are missing after the load; see the table list in Details. Use an "
        "older version and check how the dump was made.",
    ),
    LimitExceeded: (
        "The restore test went over its limit",
        "It took longer, or needed more disk, than allowed. Free space under /tmp or run it "
        "again when the machine is quieter; a backup that keeps growing may need a bigger "
        "limit (command line: --max-time, --max-disk).",
    ),
    DumpRefused: (
        "The dump does something the restore test refuses to run",
        "The details say what. On an existing server only one database can be restored; "
        "use a throwaway server for dumps with several.",
    ),
    ServerSoftwareMissing: (
        "The database server software for the restore test is not installed",
        "Install MariaDB (Debian/Ubuntu: apt-get install mariadb-server mariadb-client) or "
        "PostgreSQL 15.14 or later (apt-get install postgresql), whichever the backup needs; "
        "the details name what is missing. Or test against an existing server.",
    ),
    InstanceFailed: (
        "The throwaway database server could not be started",
        "The details show the server's own log. Check free space under /tmp and that the "
        "installed server starts at all.",
    ),
    ServerUnreachable: (
        "The existing database server could not be used",
        "Check the server's socket path in the address, that the server runs, and the "
        "account and its password file.",
    ),
    ConfinementUnavailable: (
        "The dump was not loaded: it could not be confined on that server",
        "The restore test loads a dump only as a fresh account that can reach nothing but "
        "its scratch database. Give an account that may create databases and accounts "
        "(the details say what was missing), or use a throwaway server.",
    ),
    NotRestorable: (
        "This backup cannot be restore-tested",
        "The restore test loads SQL dumps (mysqldump/mariadb-dump, Sequel Pro, plain "
        "pg_dump, pg_dump archives) and starts MariaDB physical backups (mariabackup "
        "xbstream, or a tar of the backup's folder). Use Verify for other backups.",
    ),
    NotPreparable: (
        "This physical backup cannot be restore-tested on its own",
        "An incremental or partial backup needs its full backup to start a server. "
        "Restore-test the full backup; Verify checks this one.",
    ),
    PrepareFailed: (
        "mariabackup could not prepare the physical backup",
        "Every layer of the backup verified, but its redo log could not be applied; the "
        "details show mariabackup's own words. Use an older version and check the backup "
        "job's logs.",
    ),
    PreparedServerFailed: (
        "The server did not start on the prepared backup",
        "The details show the server's log. If a fresh MariaDB starts here, the backup's "
        "data files are at fault: use an older version.",
    ),
    PreparedDataUnreadable: (
        "The server started on the backup but could not read its data",
        "A table's definition or data is damaged in a way the checksums of the backup do "
        "not cover; the details name it. Use an older version.",
    ),
    ServerError: (
        "The database server reported an unexpected error",
        "See the details; run the restore test again, on a throwaway server if it was an "
        "existing one.",
    ),
    ArchiveRestoreFailed: (
        "pg_restore could not restore the archive",
        "The details show pg_restore's own words. Check the archive against the PostgreSQL "
        "version it was made for; if an older version restores, compare the two.",
    ),
    UnsafeMemberPath: (
        "A file in the backup would be written outside its folder",
        "The backup names a file with '..' or an absolute path: it was crafted or damaged. "
        "Nothing was written; do not extract it with other tools either.",
    ),
    XbcryptKeyInvalid: (
        "This is not a usable XtraBackup encryption key",
        "An xbcrypt key is 16, 24 or 32 bytes, the whole key file; the details say what is "
        "wrong (often a newline at the end of the file).",
    ),
    KmsDecryptFailed: (
        "KMS did not give the backup's data key",
        "Check the KMS key, the region and your permission to Decrypt with it.",
    ),
    XbcryptKeyNeeded: (
        "This physical backup is encrypted by XtraBackup: its key is needed",
        "Give the --encrypt-key file, ApsaraDB's KMS plaintext or the KMS-encrypted data key.",
    ),
    PageChecksumError: (
        "A database page in the backup is damaged",
        "An InnoDB page checksum failed in a tablespace of the backup. Use an older version.",
    ),
    BackupIncomplete: (
        "The physical backup is missing files",
        "A file the backup needs (its checkpoints, options, or a table's data) is not in it. "
        "Use an older version and check the backup job's logs.",
    ),
    PayloadNotChecked: (
        "Nothing proved the backup's content",
        "Strict checking wants the dump inside judged complete, and this one could not be; "
        "the details say what the plaintext is.",
    ),
    HistoryError: (
        "The verification history could not be read or written",
        "Check the free space and permissions of Sealcheck's data folder; the details name "
        "the file.",
    ),
    ReportUnreadable: (
        "The evidence report could not be read",
        "Check that the file is a whole evidence report exported by Sealcheck (HTML or JSON).",
    ),
    BackupFailed: ("The backup failed verification", "Try an older version."),
    SealcheckError: ("The operation failed", "See the details."),
    # Key rotation (core/rotation, issue 13).
    CannotOpen: (
        "This version cannot be rotated",
        "The details say why (no held key opens it, a symmetric or gpg backup, damaged data); "
        "it keeps its original key.",
    ),
    PlanError: (
        "The audit's shard plan cannot be used",
        "The message names the plan or result file and what is wrong with it. A plan "
        "changed or cut after it was written is refused: write it again with "
        "'sealcheck audit … --plan-out' and run the shards from the new one.",
    ),
    ResultsError: (
        "The shard results cannot be written or read",
        "The message names the results folder or S3 prefix and the part. Check it exists "
        "(a merge does not create it), that this machine may list, read and create objects "
        "there, and that no part was edited: results are only ever added, never replaced.",
    ),
    MergeRefused: (
        "This campaign was merged into the history already",
        "Its results and campaign record are in the history (the message names the "
        "record); merging again would record them twice. Export the report from the "
        "history, or merge a new plan.",
    ),
    ClusterUnavailable: (
        "The Dask cluster cannot be used",
        "Check the cluster address and its TLS files, that the scheduler is running and "
        "that the 'dask' extra is installed (pip install 'sealcheck[dask]'); or audit on "
        "this machine without --cluster.",
    ),
    JournalError: (
        "The rotation journal cannot be used",
        "Check the journal file's folder is writable and has space, then resume.",
    ),
    ResumeContradicts: (
        "This does not match the interrupted rotation",
        "The OpenPGP key or folder given is not the one the rotation started with (the "
        "details name both): give the same one, or leave it out to use the recorded one.",
    ),
    RecordedKeyChanged: (
        "The rotation's OpenPGP key file now holds another key",
        "Put the key the rotation started with back in that file (the details give its "
        "fingerprint), then resume.",
    ),
    WeakNewKey: (
        "The new key is refused",
        "Use an RSA key of at least 2048 bits as the new key.",
    ),
    NoPrivateHalf: (
        "Nobody is known to hold the new key's private half",
        "Give the new private key (file, held key or token key), or choose a public-key-only "
        "rotation if its private half is kept offline.",
    ),
    NoProofOfPossession: (
        "The new key failed the proof of possession",
        "Its private half did not decrypt a challenge: pick the matching private key.",
    ),
    WrongNewKeyPassphrase: (
        "The passphrase does not open the new key",
        "Type the new OpenPGP key's passphrase again (the one its secret key was exported "
        "with). Nothing was written.",
    ),
    ConditionsIgnored: (
        "This store ignores create-only writes",
        "A rotation there could overwrite keys, so it is refused: use a store that honours "
        "If-None-Match (AWS S3, moto, SeaweedFS).",
    ),
    VersioningNotEnabled: (
        "Versioning is not enabled on this bucket",
        "Enable versioning on the bucket first, so a mistake can be undone.",
    ),
    LockHeld: (
        "Another rotation holds this prefix",
        "Wait for it to finish, or for its lock to expire, then start again.",
    ),
    AlreadyExists: (
        "An object already exists under this name",
        "Nothing was overwritten; the details say which object.",
    ),
}

# A stored report names its error's class; this finds the class (and so its parents).
_BY_NAME: dict[str, type[SealcheckError]] = {c.__name__: c for c in _WORDS}


def words_for(cls: type[SealcheckError]) -> tuple[str, str]:
    """(headline, advice) of the most specific class in ``cls``'s ancestry that has words."""
    return next(_WORDS[c] for c in cls.__mro__ if c in _WORDS)


def describe(error: ErrorInfo | BaseException, report: Report | None = None) -> UserMessage:
    """Words for an error from a report, a typed core error or an unexpected exception.

    ``report``, when the error comes from one, lets the advice fit the backup (a
    passphrase backup is never told to check its wrapped-key version)."""
    cls: type[SealcheckError] | None
    if isinstance(error, ErrorInfo):
        cls = _BY_NAME.get(error.kind)  # None: a kind this version does not know
        layer, text, code = error.layer, error.message, error.exit_code
    elif isinstance(error, SealcheckError):
        cls = type(error)
        layer = error.layer.value if error.layer else None
        text, code = error.message(), int(error.exit_code)
    else:
        return UserMessage(
            "Sealcheck hit an unexpected problem (a bug)",
            None,
            "Copy the details and report them; the rest of the app keeps working.",
            f"{type(error).__name__}: {error}",
            INTERNAL_ERROR,
        )
    if cls is None:
        bad = Verdict.of(code) is Verdict.FAILED
        headline, advice = words_for(BackupFailed if bad else SealcheckError)
    else:
        headline, advice = words_for(cls)
    if cls is not None and issubclass(cls, WrongKey) and report is not None:
        advice = _wrong_key_advice(report) or advice
    return UserMessage(headline, LAYER_WORDS.get(layer or ""), advice, text, code)


def _wrong_key_advice(report: Report) -> str | None:
    """The advice for a key that does not open the backup, by how the backup is sealed."""
    if report.wrapped_key is not None:
        return None  # RSA-wrapped data key: the general advice (key, wrapped-key version)
    formats = set(report.formats)
    said = report.error.message.lower() if report.error is not None else ""
    if formats & {"openpgp", "openpgp-armored"} and "passphrase" in said:
        return (
            "Check the passphrase file set for this source (Keys page): this backup was made "
            "with gpg --symmetric and opens with its passphrase alone. If it does, the start "
            "of the backup may be damaged: try an older version."
        )
    if formats & {"cms", "cms-pem", "smime"}:
        return (
            "Give the private key of one of this backup's recipients (PEM, keyring or token "
            "on the Keys page); the details say which recipients the backup names."
        )
    if formats & {"openpgp", "openpgp-armored"}:
        return (
            "Give the OpenPGP secret key this backup was encrypted to (the details name its "
            "key ids) for this source on the Keys page."
        )
    if formats & {"openssl-enc", "openssl-enc-base64"}:
        return (
            "Check the passphrase file set for this source (Keys page): it must hold the "
            "secret the backup was made with (openssl enc -pass file:). If it does, the start "
            "of the backup may be damaged: try an older version."
        )
    return None


def listing_problem(exc: BaseException, where: str) -> str:
    """A failed listing in a listing's words: what is wrong, where, and what to do
    (never "downloading the backup": nothing was being downloaded)."""
    msg = describe(exc)
    if isinstance(exc, SealcheckError):
        what = exc.summary.rstrip(".")
        detail = f" {exc.detail}" if exc.detail else ""
        return f"Cannot list {where}: {what[0].lower()}{what[1:]}.{detail}\n{msg.advice}"
    return f"Cannot list {where}: {msg.headline}. {msg.advice}\n{msg.details}"
