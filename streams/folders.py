"""Folders Kuzet keeps its own data in, on local disk: its owner's alone.

Every folder Kuzet makes for data it reuses or keeps (``kuzet worlds``' work
folder, the demo's logs under ``.kuzet/``) goes through :func:`private_folder`:
created with mode 0700, parents it has to make too; an existing one of the
same user is tightened to 0700; one that belongs to another user is refused,
since whoever owns a folder can replace what is in it.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     folder = private_folder(Path(tmp) / "kuzet" / "worlds")
...     oct(folder.stat().st_mode & 0o777), oct(folder.parent.stat().st_mode & 0o777)
('0o700', '0o700')
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from detectors.errors import KuzetError

logger = logging.getLogger(__name__)

#: Read, write and enter for the owner; nothing for group and others.
PRIVATE = 0o700


class FolderError(KuzetError):
    """A folder Kuzet would keep data in is not one it may trust; the message says why."""


def private_folder(path: Path) -> Path:
    """``path`` as a folder only the user running Kuzet can use (see the module docstring)."""
    path = Path(path)
    missing = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE)
        except FileExistsError:  # made meanwhile (another process): judged below
            continue
        except OSError as exc:
            raise FolderError(f"cannot create folder {folder} ({exc.strerror})") from None
        os.chmod(folder, PRIVATE)  # whatever the umask took away
    try:
        info = os.stat(path)
    except OSError as exc:
        raise FolderError(f"cannot use folder {path} ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FolderError(f"{path} is not a folder; remove it or choose another path")
    if info.st_uid != os.getuid():
        raise FolderError(
            f"folder {path} belongs to another user (uid {info.st_uid}, not {os.getuid()}): "
            "whoever owns it can replace what Kuzet keeps there. Remove it, or choose a "
            "folder of the user Kuzet runs as"
        )
    if stat.S_IMODE(info.st_mode) != PRIVATE:
        os.chmod(path, PRIVATE)
        logger.info("folder %s made private (mode 0700)", path)
    return path
