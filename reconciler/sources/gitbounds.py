"""The bounds git runs within, beyond what it is told on its command line: its own memory
settings, an address-space limit that its helpers inherit, and a deadline (coreutils'
``timeout``) that outlives this process. See ``gitprocess``'s contract, whose calls these
bound.
"""

from __future__ import annotations

import math
import os
import re
import resource
from collections.abc import Mapping

# git reads http.lowSpeedTime as a C int: a larger value (a --git-timeout of some 68 years) is
# "bad numeric config value ... out of range" and fails every http(s) fetch. Capped, it is
# still 68 years. So is the deadline given to ``timeout``.
GIT_INT_MAX = 2**31 - 1

# git's own bounds on its memory, for every call (git-config(1)); each keeps a repository of
# task files as fast as before. One thread for the delta search of pack-objects and for
# index-pack (each thread has a window of objects in memory). At most 64 MiB of objects in
# that window (unbounded by default: with 2 threads, a repack held 26 times the size of a
# compressible blob pushed 51 times), 16 MiB of deltas cached (256 MiB by default). A blob
# over 16 MiB (512 MiB by default) gets no delta search: it is stored deflated and streamed
# by pack-objects, index-pack and checkout, never held whole; such files only take more room
# on disk (task files are at most --max-file-size). Packs are mapped 32 MiB at a time, 256 MiB
# in all (git's values on 32-bit systems; 1 GiB and 32 TiB on 64-bit): their mappings count
# towards the address-space limit.
MEMORY_CONFIG = (
    "-c",
    "pack.threads=1",
    "-c",
    "pack.windowMemory=64m",
    "-c",
    "pack.deltaCacheSize=16m",
    "-c",
    "core.bigFileThreshold=16m",
    "-c",
    "core.packedGitWindowSize=32m",
    "-c",
    "core.packedGitLimit=256m",
)

# The address space of git and each of its helpers, by default. Fetching a repository of
# 300 000 objects (and serving it, for a local one) took some 170 MiB, a repack of a few
# thousand task files 20 MiB, git's start 30 MiB; 1 GiB leaves room for some 1.5 million
# objects, and stops an endless advertisement within seconds.
DEFAULT_MEMORY_LIMIT = 1024**3
# What git (or a library under it) says when an allocation or a mapping fails; looked for in
# git's own lines only (``own_lines``), not in what the remote says (``remote: ...``).
OUT_OF_MEMORY = re.compile(
    r"(?i)out of memory|cannot allocate memory|insufficient memory|"
    r"(?:malloc|realloc|calloc|mmap) failed|failed to map segment|unable to create thread"
)
# Runs git (its arguments after the limit in KiB) under the address-space limit.
_LIMIT_SCRIPT = 'ulimit -v "$1" && shift && exec "$@"'
# git's deadline for when this process is gone (coreutils' ``timeout``): so many seconds
# after the call's own timeout (while this process lives, its own kill and message come
# first), then KILL so many seconds after the TERM (git removes its locks on TERM).
_ORPHAN_MARGIN = 5
_ORPHAN_KILL_AFTER = 5


def which(program: str, env: Mapping[str, str]) -> str | None:
    """The path of ``program`` as ``execvp`` finds it on ``env``'s PATH."""
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def tools(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The paths of coreutils' ``timeout`` and of ``sh`` on ``env``'s PATH; None if either is
    missing."""
    found = which("timeout", env), which("sh", env)
    return None if found[0] is None or found[1] is None else (found[0], found[1])


def _address_space(limit: int | None) -> int | None:
    """The address-space limit git gets for ``limit``: never above the limits this process
    has (a shell cannot raise the hard one; ``ulimit -v`` sets both, and git must not get more
    than an operator gave crontask); None for no limit of our own."""
    if limit is None:
        return None
    own = [n for n in resource.getrlimit(resource.RLIMIT_AS) if n != resource.RLIM_INFINITY]
    return min([limit, *own])


def wrapper_problem(env: Mapping[str, str]) -> str | None:
    """Why git will run without its memory limit and its own deadline (see the module's
    contract), in one line; None if it will have both."""
    if tools(env) is None:
        return (
            "coreutils' timeout or sh is not on PATH: git runs without its memory limit, and "
            "lives on if crontask is killed during a fetch; install coreutils"
        )
    return None


def bounded(
    command: list[str], timeout: float, tools: tuple[str, str] | None, memory_limit: int | None
) -> list[str]:
    """``command`` run under coreutils' ``timeout`` (``tools``: its path and ``sh``'s), which
    signals its whole process group some seconds after ``timeout`` even once this process is
    gone, and under the address-space limit ``memory_limit`` (see ``gitprocess``'s contract);
    as it is where either tool is missing."""
    if tools is None:
        return command
    timeout_path, sh = tools
    deadline = min(math.ceil(timeout) + _ORPHAN_MARGIN, GIT_INT_MAX)
    limit = _address_space(memory_limit)
    bounded = [timeout_path, "-k", f"{_ORPHAN_KILL_AFTER}s", f"{deadline}s"]
    if limit is None:
        return [*bounded, *command]
    return [*bounded, sh, "-c", _LIMIT_SCRIPT, "sh", str(limit // 1024), *command]


def own_lines(stderr: str) -> str:
    """What git itself said on ``stderr``: without the remote's lines (``remote: ...``), where a
    server's own lack of memory is no lack of this limit's."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("remote:"))
