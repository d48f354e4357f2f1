"""What is retried, and how: the transient transfer errors, the resume budget, the
backoff (cancellable), and reading a response body within bounds."""

from __future__ import annotations

import time
from typing import Any

import botocore.exceptions as bex

from ...plumbing.progress import CancelToken

# Drops in a row, without real progress in between, before a stream gives up.
MAX_RESUMES = 6
# A drop after at least this many new bytes starts the count again: a long
# download over a flaky link must not fail on its seventh drop in ten hours.
RESUME_PROGRESS = 1 << 20
# A server that ignores Range resends the prefix we already have; it is
# dropped in bounded reads so memory does not grow with the resume offset.
SKIP_CHUNK = 1 << 20

# Transfer errors worth another request (a resume, or the ranged read again).
TRANSIENT = (
    bex.ResponseStreamingError,
    bex.ReadTimeoutError,
    bex.ConnectionClosedError,
    bex.EndpointConnectionError,
    bex.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)


def backoff(attempt: int, cancel: CancelToken) -> None:
    """Wait before retry ``attempt`` (0.2 s, doubling, at most 5 s); cancellable."""
    deadline = time.monotonic() + min(0.2 * 2**attempt, 5.0)
    while time.monotonic() < deadline:
        cancel.check()
        time.sleep(0.05)


def status(resp: dict[str, Any]) -> int | None:
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def read_upto(body: Any, n: int) -> bytes:
    """Up to n bytes, looping over short reads; shorter only at EOF."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        b: bytes = body.read(min(left, SKIP_CHUNK))
        if not b:
            break
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def close_quietly(body: Any) -> None:
    try:
        body.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken connection
        pass
