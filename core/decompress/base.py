"""What every decompressor offers: a ``read`` and the statistics its proof is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class DecompressStats:
    fmt: str
    members: int = 0
    input_bytes: int = 0
    trailing_zero_bytes: int = 0
    # xz Stream Padding (zero bytes in multiples of four between or after
    # streams): part of the format, so counted here and not warned about.
    stream_padding_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class DecompressReader(Protocol):
    stats: DecompressStats

    def read(self, n: int = -1, /) -> bytes: ...
