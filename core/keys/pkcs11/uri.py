"""RFC 7512 ``pkcs11:`` URIs: parsing what ``--key`` names, and writing URIs back.

Kept apart from the token code so that a URI can be checked (and a malformed
one refused as a ``UsageError``) without python-pkcs11 or any module loaded.
Only the attributes Sealcheck uses are kept; a PIN written into the URI
(``pin-value``) is refused, because URIs show in reports and process lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from ...errors import UsageError

_PATH_ATTRS = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "object",
        "id",
        "type",
        "slot-id",
        "slot-description",
        "slot-manufacturer",
        "library-manufacturer",
        "library-description",
        "library-version",
    }
)
_QUERY_ATTRS = frozenset({"module-path", "module-name", "pin-source", "pin-value"})
_OBJECT_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of a ``pkcs11:`` URI Sealcheck uses (RFC 7512)."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: Path | None = None

    def describe_key(self) -> str:
        parts = []
        if self.object is not None:
            parts.append(f"label {self.object!r}")
        if self.id is not None:
            parts.append(f"id {self.id.hex()}")
        return " and ".join(parts) if parts else "any RSA key"

    def describe_token(self) -> str:
        parts = []
        if self.token is not None:
            parts.append(f"label {self.token!r}")
        for name, value in (
            ("serial", self.serial),
            ("manufacturer", self.manufacturer),
            ("model", self.model),
            ("slot-id", self.slot_id),
            ("slot-description", self.slot_description),
            ("slot-manufacturer", self.slot_manufacturer),
        ):
            if value is not None:
                parts.append(f"{name} {value!r}")
        return " and ".join(parts) if parts else "any token"


def _decode_component(raw: str, name: str, *, binary: bool = False) -> Any:
    if _BAD_ESCAPE.search(raw):
        raise UsageError(f"malformed pkcs11: URI: bad percent-escape in the {name} attribute")
    data = unquote_to_bytes(raw)
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"malformed pkcs11: URI: the {name} attribute is not UTF-8") from None


def _pin_source_path(value: str) -> Path:
    if value.startswith("file://"):
        rest = value[len("file://") :]
        if rest and not rest.startswith("/"):  # file://host/path: only localhost
            host, _, path = rest.partition("/")
            if host not in ("", "localhost"):
                raise UsageError("pin-source: only local files (file:/path) are supported")
            rest = "/" + path
        return Path(rest)
    if value.startswith("file:"):
        return Path(value[len("file:") :])
    if value.startswith("|"):
        raise UsageError("pin-source: PIN programs (|command) are not supported; use file:/path")
    if not value:
        raise UsageError("malformed pkcs11: URI: empty pin-source")
    return Path(value)


def parse_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI; malformed ones raise ``UsageError``.

    A PIN written in the URI (``pin-value``) is refused: the URI is shown in
    reports and process lists. Use ``pin-source=file:/path`` or ``--pin-file``.
    """
    if not text[:7].lower() == "pkcs11:":
        raise UsageError("not a pkcs11: URI (it must start with 'pkcs11:')")
    body = text[7:]
    if "#" in body:
        raise UsageError("malformed pkcs11: URI: '#' is not allowed (percent-encode it as %23)")
    path, _, query = body.partition("?")
    fields: dict[str, Any] = {}
    for part in path.split(";") if path else []:
        if not part:
            continue  # tolerate a trailing ';'
        name, eq, raw = part.partition("=")
        name = name.lower()
        if not eq:
            raise UsageError(f"malformed pkcs11: URI: {name!r} has no '=value'")
        if name not in _PATH_ATTRS and not name.startswith("x-"):
            raise UsageError(
                f"malformed pkcs11: URI: unknown attribute {name!r} (known: "
                f"{', '.join(sorted(_PATH_ATTRS))})"
            )
        if name in fields:
            raise UsageError(f"malformed pkcs11: URI: {name!r} is given twice")
        fields[name] = _decode_component(raw, name, binary=name == "id")
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, eq, raw = part.partition("=")
        name = name.lower()
        if name == "pin-value":
            # Never echo the value.
            raise UsageError(
                "a PIN inside the pkcs11: URI (pin-value) is refused: it would show in reports "
                "and process lists; use pin-source=file:/path or --pin-file"
            )
        if not eq:
            raise UsageError(f"malformed pkcs11: URI: query attribute {name!r} has no '=value'")
        if name not in _QUERY_ATTRS and not name.startswith("x-"):
            raise UsageError(
                f"malformed pkcs11: URI: unknown query attribute {name!r} (known: module-path, "
                "module-name, pin-source)"
            )
        if name in fields:
            raise UsageError(f"malformed pkcs11: URI: {name!r} is given twice")
        fields[name] = _decode_component(raw, name)

    typ = fields.get("type")
    if typ is not None and typ not in _OBJECT_TYPES:
        raise UsageError(
            f"malformed pkcs11: URI: type={typ!r}; it is one of {', '.join(sorted(_OBJECT_TYPES))}"
        )
    if typ in ("secret-key", "data"):
        raise UsageError(f"type={typ} cannot unwrap an RSA-wrapped data key: use type=private")
    slot_id: int | None = None
    if "slot-id" in fields:
        try:
            slot_id = int(fields["slot-id"], 10)
        except ValueError:
            raise UsageError("malformed pkcs11: URI: slot-id is not a decimal number") from None
    if "id" in fields and not fields["id"]:
        raise UsageError("malformed pkcs11: URI: empty id")
    return Pkcs11Uri(
        token=fields.get("token"),
        manufacturer=fields.get("manufacturer"),
        serial=fields.get("serial"),
        model=fields.get("model"),
        object=fields.get("object"),
        id=fields.get("id"),
        type=typ,
        slot_id=slot_id,
        slot_description=fields.get("slot-description"),
        slot_manufacturer=fields.get("slot-manufacturer"),
        library_manufacturer=fields.get("library-manufacturer"),
        library_description=fields.get("library-description"),
        module_path=fields.get("module-path") or None,
        module_name=fields.get("module-name") or None,
        pin_source=_pin_source_path(fields["pin-source"]) if "pin-source" in fields else None,
    )


def _q(value: str) -> str:
    return quote(value, safe="")


def build_uri(
    *,
    token: str | None = None,
    serial: str | None = None,
    object_label: str | None = None,
    key_id: bytes | None = None,
    module_path: str | None = None,
) -> str:
    """A ``pkcs11:`` URI for ``--key`` (the type is always ``private``)."""
    parts = []
    if token is not None:
        parts.append(f"token={_q(token)}")
    if serial:
        parts.append(f"serial={_q(serial)}")
    if key_id:
        parts.append("id=" + "".join(f"%{b:02X}" for b in key_id))
    if object_label:
        parts.append(f"object={_q(object_label)}")
    parts.append("type=private")
    uri = "pkcs11:" + ";".join(parts)
    if module_path:
        uri += "?module-path=" + quote(module_path, safe="/:\\")
    return uri
