"""A run's output: a command's pipe read on the event loop, of which only the tail is kept, and
the decoding of a command's or a response's bytes to text of bounded size."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Literal

from reconciler.core.runs import truncation_marker

_READ_CHUNK = 64 * 1024
_TURN_CHUNKS = 16  # a turn of reads of a pipe the loop cannot watch: 1 MiB at most


# What a byte that becomes U+FFFD (an undecodable one: surrogateescape's U+DC80-U+DCFF; a NUL:
# made U+DC00 here) starts with in UTF-8 with surrogatepass: three bytes, as U+FFFD is stored.
# Valid UTF-8 never holds these pairs.
_WIDE = (b"\xed\xb0", b"\xed\xb2", b"\xed\xb3")


def bounded_text(data: bytes, limit: int, keep: Literal["head", "tail"]) -> tuple[str, int]:
    """``data`` as text of at most ``limit`` bytes of UTF-8, cut at a character boundary, and
    how many bytes of ``data`` the text leaves out (from its end for ``head``, else its start).

    The limit is what the store keeps, not what was read: an undecodable byte becomes U+FFFD
    and so does NUL (as the store writes it), three bytes each, so that 64 KiB of binary read
    would otherwise be kept as 192 KiB.
    """
    # Each character as wide as it is stored: where to cut is then a byte offset, found at
    # C speed (64 KiB of random bytes: about three times a plain decode's ~2 ms; text that is
    # valid UTF-8, the usual case, costs microseconds).
    sized = (
        data.decode("utf-8", errors="surrogateescape")
        .encode("utf-8", errors="surrogatepass")
        .replace(b"\x00", b"\xed\xb0\x80")
    )
    kept = data
    if len(sized) > limit and keep == "head":
        end = limit
        while end > 0 and _continues(sized[end]):
            end -= 1
        kept = data[: end - 2 * _wide(sized[:end])]
    elif len(sized) > limit:
        start = len(sized) - limit
        while start < len(sized) and _continues(sized[start]):
            start += 1
        kept = data[len(data) - (len(sized) - start - 2 * _wide(sized[start:])) :]
    # Decoded as it has always been: one U+FFFD per invalid sequence (never more than one per
    # byte: no wider than measured).
    return kept.decode("utf-8", errors="replace").replace("\x00", "\ufffd"), len(data) - len(kept)


def _continues(byte: int) -> bool:
    """Whether ``byte`` continues a UTF-8 sequence (a cut before it would split a character)."""
    return 0x80 <= byte <= 0xBF


def _wide(sized: bytes) -> int:
    """How many characters of ``sized`` are one byte of the data and three of text."""
    return sum(sized.count(pair) for pair in _WIDE)


class TailReader:
    """Reads a pipe on the event loop, keeping only its last ``limit`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, limit: int) -> None:
        self._loop = loop
        self._fd = fd
        self._limit = limit
        self._buf = bytearray()
        self._total = 0
        self._eof = asyncio.Event()
        self._watching = False
        self._polls: asyncio.TimerHandle | None = None
        self._closed = False
        os.set_blocking(fd, False)
        try:
            loop.add_reader(fd, self._on_readable)
        except OSError:  # the loop cannot watch it (epoll's max_user_watches): look in turns
            self._poll_soon(0.01)
        else:
            self._watching = True

    def _poll_soon(self, delay: float) -> None:
        # Sooner while the command prints: a full pipe would hold it at its next write. A turn
        # reads a few chunks at most: a command that prints as fast as they are read (``yes``
        # on a few cores) would keep the loop in one turn, its run's timeout with it.
        def poll() -> None:
            self._polls = None
            read = 0
            while read < _TURN_CHUNKS and self._on_readable():
                read += 1
            if not self._eof.is_set():
                more = read == _TURN_CHUNKS
                self._poll_soon(0 if more else 0.01 if read else min(2 * max(delay, 0.01), 0.25))

        self._polls = self._loop.call_later(delay, poll)

    def _on_readable(self) -> bool:
        """Read a chunk; whether there may be more to read now."""
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""  # treat a broken pipe like its end
        if not chunk:
            self._unwatch()
            self._eof.set()
            return False
        self._total += len(chunk)
        self._buf += chunk
        # Trimming after every chunk keeps memory at limit + one chunk however much is printed.
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]
        return True

    async def drain(self, timeout: float) -> None:
        """Wait for end of file, but at most ``timeout`` seconds."""
        if self._eof.is_set():
            return  # the usual case: the pipe closed with the process
        if self._polls is not None:  # read in turns: what the process left is there now
            self._polls.cancel()
            self._poll_soon(0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._eof.wait()

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False
        if self._polls is not None:
            self._polls.cancel()
            self._polls = None

    def close(self) -> None:
        if not self._closed:
            self._unwatch()
            os.close(self._fd)
            self._closed = True

    def text(self) -> str:
        data = bytes(self._buf)
        dropped = self._total - len(data)
        skip = 0
        if dropped:
            # The cut may have split a UTF-8 sequence: drop its orphaned continuation bytes (at
            # most three) rather than start the tail with a replacement character.
            while skip < min(3, len(data)) and _continues(data[skip]):
                skip += 1
        # Undecodable bytes take more room as text: the tail may lose some more of its start.
        tail, cut = bounded_text(data[skip:], self._limit, "tail")
        dropped += skip + cut
        if not dropped:
            return tail
        return f"{truncation_marker(dropped)}\n{tail}"
