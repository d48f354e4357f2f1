"""The layers of one xbstream member, found by content (issue 16).

XtraBackup compresses each file, then encrypts it (``NAME.qp.xbcrypt``); the
ApsaraDB recipe reads as if it were the other way round (``NAME.xbcrypt.qp``).
Names are not trusted either way: each layer's first bytes say what it is
(``XBCRYP0x``: xbcrypt, ``qpress10``: qpress), a layer found adds its decoder,
and what comes out is sniffed again, up to a few layers. The suffix a layer
explains is taken off the name (``t.ibd.qp.xbcrypt`` → ``t.ibd``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..decompress.qpress import QpressDecoder
from ..decrypt.xbcrypt import MAGICS, XbcryptDecoder, XbcryptStats
from ..decrypt.xbkey import HOW_TO_GIVE, XbcryptKey, XbcryptKeyNeeded
from ..errors import IntegrityError, Layer

MAX_LAYERS = 4
_SUFFIX = {"xbcrypt": ".xbcrypt", "qpress": ".qp"}


@dataclass
class LayerTally:
    """What the members' layers proved, summed over the backup."""

    xbcrypt: XbcryptStats = field(default_factory=XbcryptStats)
    qpress_files: int = 0
    qpress_blocks: int = 0
    qpress_bytes_in: int = 0
    # "xbcrypt > qpress" → number of members with those layers, outermost first.
    stacks: dict[str, int] = field(default_factory=dict)
    members: int = 0
    plain_bytes: int = 0


Emit = Callable[[str, bytes], None]


class MemberChain:
    """Decodes one member: layer decoders appended as their magic is seen."""

    def __init__(
        self,
        path: str,
        *,
        key: XbcryptKey | None,
        tally: LayerTally,
        emit: Emit,
        emit_hole: Callable[[str, int], None],
        obj: str | None,
        on_xbcrypt: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.name = path  # the final name, suffixes of the layers found taken off
        self._key = key
        self._tally = tally
        self._emit = emit
        self._emit_hole = emit_hole
        self._obj = obj
        self._on_xbcrypt = on_xbcrypt
        self._layers: list[XbcryptDecoder | QpressDecoder] = []
        self._kinds: list[str] = []
        self._head = b""  # the innermost layer's first bytes, until decided
        self._decided = False
        self.bytes = 0

    def feed(self, data: bytes) -> None:
        self._push(0, data)

    @property
    def plain(self) -> bool:
        """Its first bytes showed no layer: what comes in is the file itself."""
        return self._decided and not self._layers

    @property
    def layered(self) -> bool:
        return bool(self._layers)

    def skip(self, n: int) -> None:
        """A hole of ``n`` zero bytes in a plain member, handed on as such."""
        self.bytes += n
        self._emit_hole(self.name, n)

    def _push(self, depth: int, data: bytes) -> None:
        if depth < len(self._layers):
            layer = self._layers[depth]
            if isinstance(layer, XbcryptDecoder):
                out = layer.feed(data)
                if out:
                    self._push(depth + 1, out)
            else:
                for _name, piece in layer.feed(data):
                    if piece:
                        self._push(depth + 1, piece)
            return
        if self._decided:
            self._out(data)
            return
        self._head += data
        if len(self._head) >= 8:
            self._decide(depth)

    def _decide(self, depth: int) -> None:
        head, self._head = self._head, b""
        kind = None
        if head[:8] in MAGICS:
            kind = "xbcrypt"
        elif head.startswith(b"qpress10"):
            kind = "qpress"
        if kind is None or len(self._layers) >= MAX_LAYERS:
            self._decided = True
            if head:
                self._out(head)
            return
        self._add(kind)
        self._push(depth, head)

    def _add(self, kind: str) -> None:
        where = self.path
        if kind == "xbcrypt":
            if self._on_xbcrypt is not None:
                self._on_xbcrypt()
            if self._key is None:
                raise XbcryptKeyNeeded(
                    f"member {where!r} is xbcrypt-encrypted; {HOW_TO_GIVE}", obj=self._obj
                )
            self._layers.append(XbcryptDecoder(self._key.key, name=where, obj=self._obj))
        else:
            self._layers.append(QpressDecoder(name=where, obj=self._obj))
        self._kinds.append(kind)
        suffix = _SUFFIX[kind]
        if self.name.endswith(suffix):
            self.name = self.name[: -len(suffix)]

    def _out(self, data: bytes) -> None:
        self.bytes += len(data)
        self._emit(self.name, data)

    def finish(self) -> None:
        """The member's end chunk: every layer must end exactly."""
        for layer in self._layers:  # feed already handed on everything; these check ends
            layer.finish()
        if not self._decided:
            # Fewer than 8 bytes: too short for any layer's magic; plain data.
            self._decided = True
            if self._head:
                self._out(self._head)
            self._head = b""
        t = self._tally
        t.members += 1
        t.plain_bytes += self.bytes
        stack = " > ".join(self._kinds) or "plain"
        t.stacks[stack] = t.stacks.get(stack, 0) + 1
        for layer in self._layers:
            if isinstance(layer, XbcryptDecoder):
                t.xbcrypt.merge(layer.stats)
            else:
                t.qpress_files += len(layer.files)
                t.qpress_blocks += sum(f.blocks for f in layer.files)
                t.qpress_bytes_in += layer.input_bytes
                if len(layer.files) != 1:
                    raise IntegrityError(
                        f"member {self.path!r}: its qpress archive holds {len(layer.files)} "
                        "files where XtraBackup writes one",
                        obj=self._obj,
                        layer=Layer.DECOMPRESS,
                    )
