"""A command's output: one pipe read on the event loop, of which only the tail is kept."""

from __future__ import annotations

import asyncio
import contextlib
import os

_READ_CHUNK = 64 * 1024


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
        self._closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)
        self._watching = True

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""  # treat a broken pipe like its end
        if not chunk:
            self._unwatch()
            self._eof.set()
            return
        self._total += len(chunk)
        self._buf += chunk
        # Trimming after every chunk keeps memory at limit + one chunk however much is printed.
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]

    async def drain(self, timeout: float) -> None:
        """Wait for end of file, but at most ``timeout`` seconds."""
        if self._eof.is_set():
            return  # the usual case: the pipe closed with the process
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._eof.wait()

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def close(self) -> None:
        if not self._closed:
            self._unwatch()
            os.close(self._fd)
            self._closed = True

    def text(self) -> str:
        data = bytes(self._buf)
        dropped = self._total - len(data)
        if not dropped:
            return data.decode("utf-8", errors="replace")
        # The cut may have split a UTF-8 sequence: drop its orphaned continuation bytes (at most
        # three) rather than start the tail with a replacement character.
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
            skip += 1
        tail = data[skip:].decode("utf-8", errors="replace")
        return f"[... {dropped + skip} bytes truncated ...]\n{tail}"
