"""Paths as a process chrooted at some root would see them.

K3s's plugin dir holds *absolute* symlinks into ``/var/lib/rancher/k3s/data/<hash>/bin``, and a
host's ``/usr/bin/python3`` is often an absolute link too; read from a container that mounts the
host at ``/host``, those links must be followed with ``/host`` as ``/``. Kept free of asyncio and
subprocess so the init container (``multusd install``) can use it cheaply.
"""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINK_HOPS = 40  # Linux's own bound (MAXSYMLINKS)


def resolve_in_root(root: str, path: str, max_hops: int = MAX_SYMLINK_HOPS) -> str:
    """The real path of ``path`` below ``root``, with ``root`` acting as ``/``.

    Absolute link targets restart at ``root``, relative ones continue from their directory, and
    ``..`` never climbs above ``root``. Raises ``FileNotFoundError`` for a missing component and
    ``OSError(ELOOP)`` past ``max_hops``.
    """
    pending = [p for p in reversed(path.split("/")) if p not in ("", ".")]
    resolved: list[str] = []  # components below root, none of them a symlink
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if not stat.S_ISLNK(os.lstat(candidate).st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > max_hops:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.path.join("/", *resolved, part))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
    return os.path.join(root, *resolved)
