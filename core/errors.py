"""Typed errors with stable exit codes.

Every error a user can meet is one of these classes. The class docstring is the
default user-facing sentence; ``detail`` adds the specifics (object, offset,
what to try). The CLI maps ``exit_code`` straight to the process status, and
the GUI maps the class to words in one place. Messages must never contain
secret material (keys, passphrases, PINs): callers pass names, not values.
"""

from __future__ import annotations

import enum


class Layer(enum.Enum):
    """The layer of the envelope that failed or was proved."""

    SOURCE = "source"  # reading the object (file or S3)
    KEY = "key"  # unwrapping the data key
    CIPHER = "cipher"  # symmetric decryption and its padding
    DECOMPRESS = "decompress"  # gzip/bzip2/zstd/xz integrity
    PAYLOAD = "payload"  # dump format and completeness
    # Physical backups (issue 16): the layers of each xbstream member, the backup's
    # own completeness, and the InnoDB pages of its tablespaces.
    MEMBER_CIPHER = "member-cipher"  # xbcrypt of each member
    MEMBER_DECOMPRESS = "member-decompress"  # qpress of each member
    BACKUP = "backup"  # checkpoints, backup-my.cnf, info, every tablespace
    PAGES = "pages"  # InnoDB page checksums
    DESTINATION = "destination"  # writing the restored file
    DATABASE = "database"  # restore test


class ExitCode(enum.IntEnum):
    OK = 0
    BACKUP_FAILED = 1  # the backup itself failed verification
    USAGE = 2  # usage, environment, storage access, missing key
    CANCELLED = 130


class SealcheckError(Exception):
    """Sealcheck failed."""

    exit_code: ExitCode = ExitCode.USAGE
    layer: Layer | None = None

    def __init__(self, detail: str = "", *, obj: str | None = None, layer: Layer | None = None):
        self.detail = detail
        self.obj = obj
        if layer is not None:
            self.layer = layer
        super().__init__(self.message())

    @property
    def summary(self) -> str:
        doc = type(self).__doc__ or "Error."
        return doc.strip().splitlines()[0]

    def message(self) -> str:
        parts = []
        if self.obj:
            parts.append(f"{self.obj}:")
        parts.append(self.summary)
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


# --- the backup failed verification (exit 1) ---------------------------------


class BackupFailed(SealcheckError):
    """The backup failed verification."""

    exit_code = ExitCode.BACKUP_FAILED


class WrongKey(BackupFailed):
    """Wrong key or passphrase: what was given does not open this backup.

    Also raised when the wrapped key belongs to another backup than the data;
    ``detail`` says which key, passphrase or wrapped key it is.
    """

    layer = Layer.KEY


class MalformedKeyObject(BackupFailed):
    """The wrapped-key object is malformed."""

    layer = Layer.KEY


class IntegrityError(BackupFailed):
    """Integrity check failed: the backup is corrupt or was tampered with."""


class TruncatedBackup(BackupFailed):
    """The backup is truncated."""


class IncompleteDump(BackupFailed):
    """The dump is incomplete: the producer did not finish writing it."""

    layer = Layer.PAYLOAD


class UnsupportedFormat(BackupFailed):
    """The backup is in a format Sealcheck does not recognise."""


class SizeLimitExceeded(BackupFailed):
    """The decompressed data exceeds the configured size limit (possible decompression bomb)."""

    layer = Layer.DECOMPRESS


# --- usage and environment (exit 2) -------------------------------------------


class UsageError(SealcheckError):
    """Invalid usage."""


class KeyUnavailable(SealcheckError):
    """The key needed to open this backup is not available."""

    layer = Layer.KEY


class KeyNotUsable(KeyUnavailable):
    """This key cannot unwrap a data key (no private part, or not allowed to decrypt)."""


class PassphraseNeeded(KeyUnavailable):
    """This private key is encrypted: its passphrase is needed."""


class WrongPassphrase(KeyUnavailable):
    """The passphrase does not open this private key."""


class NotAPrivateKey(KeyUnavailable):
    """This file is not a private key Sealcheck can read."""


class MissingTool(SealcheckError):
    """A required program is not installed."""


class StorageError(SealcheckError):
    """The storage could not be read."""

    layer = Layer.SOURCE
    transient = False


class ObjectNotFound(StorageError):
    """The object does not exist."""


class AccessDenied(StorageError):
    """Access to the object was denied."""


class TransientStorageError(StorageError):
    """The storage kept failing after several retries."""

    transient = True


class TransferCorrupted(StorageError):
    """The download was corrupted in transit (the bytes received do not match the object)."""

    transient = True


class DestinationError(SealcheckError):
    """The file could not be written.

    A file the user asked for: a restored backup, an extracted folder, a report.
    """

    layer = Layer.DESTINATION


class SaveFailed(SealcheckError):
    """Sealcheck could not save one of its own files (settings, a key, a record).

    Nothing was half-written: the file is as it was before.
    """


class Cancelled(SealcheckError):
    """Cancelled by the user."""

    exit_code = ExitCode.CANCELLED
