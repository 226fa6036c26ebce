"""The tail of a pod's container log, read from ``pods/log`` (the ``job`` action's output):
streamed, only the last ``limit`` bytes kept however long the log, and decoded as a command's
output is, marked when something was cut before it."""

from __future__ import annotations

from typing import Any, Final

CHUNK: Final = 64 * 1024
# Lines asked of pods/log: every line is at least its newline, so this many lines hold at
# least 64 KiB whenever the log is that long.
TAIL_LINES: Final = 65_536
TIMEOUT: Final = (10, 60)  # connect, read: as the other calls of the job action


def read_tail(core: Any, namespace: str, pod: str, container: str, limit: int) -> str:
    """The last ``limit`` bytes of the container's log (``core``: a CoreV1Api), in the
    calling thread."""
    response = core.read_namespaced_pod_log(
        pod,
        namespace,
        container=container,
        tail_lines=TAIL_LINES,
        _preload_content=False,
        _request_timeout=TIMEOUT,
    )
    kept = bytearray()
    total = 0
    try:
        for chunk in response.stream(CHUNK, decode_content=True):
            total += len(chunk)
            kept += chunk
            if len(kept) > limit:
                del kept[: len(kept) - limit]
    finally:
        response.release_conn()
    return tail_text(bytes(kept), total - len(kept))


def tail_text(data: bytes, dropped: int) -> str:
    """Decoded tail, marked as a command's output is when something was cut before it."""
    if not dropped:
        return data.decode("utf-8", errors="replace")
    skip = 0  # the cut may have split a UTF-8 sequence: drop its continuation bytes
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    tail = data[skip:].decode("utf-8", errors="replace")
    return f"[... {dropped + skip} bytes truncated ...]\n{tail}"
