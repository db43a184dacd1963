"""Output folders that commands write whole (`genies site`, `genies export`).

A command fills a hidden temporary folder beside its `--out` and renames it into place, so no reader
ever sees a half-written result. `--out` may be new, empty, or an earlier result of the same command
(recognised by its marker file), which is replaced; any other folder is refused, so nothing a user keeps
there is lost.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builders.errors import GeniesError


def refuse_foreign_folder(out: Path, marker: str, command: str) -> None:
    """Fail before any work when `out` holds something other than an earlier result of `command`."""
    out = Path(out)
    if out.exists() and not (out / marker).exists() and (not out.is_dir() or any(out.iterdir())):
        raise GeniesError(f"{out} exists and is not a folder written by `{command}`",
                          f"choose a new or empty --out folder; an earlier result of `{command}` there is replaced")


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".old-{out.name}-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def written_whole(out: Path, marker: str, command: str) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    refuse_foreign_folder(out, marker, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if not (tmp / marker).exists():
            raise RuntimeError(f"{command} wrote no {marker} into {tmp}")
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
