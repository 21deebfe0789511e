"""Where a sweep's inputs and outputs live: a plain path (on a filesystem every worker
mounts), or a ``file://``, ``s3://``, ``gs://`` URI through ``pyarrow.fs``.

Tasks are handed locations, not data: a worker opens them itself. The replay reads local
files, so an input on an object store is downloaded by the task that reads it into its
scratch directory (removed when the task ends); a local one is read in place.

A task's results are published whole or not at all. On a local filesystem they are
written under a temporary name beside their place (``.day=2024-08-08.tmp-<id>``) and
renamed into it: the rename is atomic, and it fails when another attempt of the task got
there first, whose identical result is kept. On an object store every file is one PUT
(an object appears whole), ``summary.json`` last: a task's result is complete when its
``summary.json`` exists. (s3:// and gs:// cannot be exercised offline: the tests cover
plain paths, ``file://`` URIs and a non-local pyarrow filesystem over a local directory.)
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from flightdesk.core.errors import CaptureError, ConfigError

SUMMARY = "summary.json"


def is_uri(location: str) -> bool:
    return "://" in location


def absolute(location: str) -> str:
    """``location`` as workers elsewhere can use it: a plain path made absolute."""
    return location if is_uri(location) else os.path.abspath(location)


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


def resolve(location: str) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path in it)``; a plain path is on the local filesystem."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), os.path.abspath(location)
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ConfigError(f"{location}: not a location pyarrow can open: {exc}") from None


def local_path(fs: Any, path: str) -> Path | None:
    """``path`` as a local Path when ``fs`` is the local filesystem, else None."""
    import pyarrow.fs as pafs

    return Path(path) if isinstance(fs, pafs.LocalFileSystem) else None


# -- inputs ---------------------------------------------------------------------------------
def stage(location: str, scratch: Path, fs_path: tuple[Any, str] | None = None) -> Path:
    """A local path holding ``location``'s file or directory: itself when local, else a
    download into ``scratch``."""
    import pyarrow.fs as pafs

    fs, path = fs_path or resolve(location)
    local = local_path(fs, path)
    if local is not None:
        if not local.exists():
            raise CaptureError(f"{location}: no such file or directory")
        return local
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise CaptureError(f"{location}: not found")
    dest = scratch / uuid.uuid4().hex / (Path(path).name or "input")
    dest.parent.mkdir(parents=True)
    pafs.copy_files(path, str(dest), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem(), use_threads=False)
    return dest


# -- results --------------------------------------------------------------------------------
def read_summary(location: str, fs_path: tuple[Any, str] | None = None) -> str | None:
    """The published ``summary.json`` text under ``location``, or None (not complete)."""
    import pyarrow.fs as pafs

    fs, path = fs_path or resolve(location)
    target = f"{path}/{SUMMARY}"
    if fs.get_file_info(target).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(target) as fh:
        text: str = fh.read().decode()
    return text


def drop_temporaries(location: str, fs_path: tuple[Any, str] | None = None) -> int:
    """Remove what dead attempts left under temporary names beside ``location`` (a worker
    killed while publishing); the number removed."""
    fs, path = fs_path or resolve(location)
    final = local_path(fs, path)
    if final is None or not final.parent.is_dir():
        return 0
    left = list(final.parent.glob(f".{final.name}.tmp-*"))
    for tmp in left:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(left)


def publish(src: Path, location: str, fs_path: tuple[Any, str] | None = None) -> bool:
    """Put the files of directory ``src`` at ``location`` (see the module docstring);
    False when another attempt had published there first."""
    fs, path = fs_path or resolve(location)
    final = local_path(fs, path)
    if final is None:
        _upload(src, fs, path)
        return True
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        shutil.copytree(src, tmp)
        os.rename(tmp, final)  # atomic; refuses a non-empty target
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (final / SUMMARY).is_file():
            return False  # an earlier attempt of the same task: its result stands
        raise
    except BaseException:  # interrupted: leave no half-written copy behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def _upload(src: Path, fs: Any, path: str) -> None:
    fs.create_dir(path, recursive=True)
    files = sorted((p for p in src.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == SUMMARY, str(p)))  # the summary last
    for file in files:
        name = f"{path}/{file.relative_to(src).as_posix()}"
        if file.parent != src:
            fs.create_dir(name.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(name) as out:
            out.write(file.read_bytes())


def write_text(location: str, name: str, text: str) -> None:
    """``location/name`` with ``text``, replaced atomically on a local filesystem."""
    fs, path = resolve(location)
    local = local_path(fs, path)
    if local is None:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{name}") as out:
            out.write(text.encode())
        return
    local.mkdir(parents=True, exist_ok=True)
    tmp = local / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.write_text(text)
    os.replace(tmp, local / name)


def clear(location: str) -> None:
    """Remove ``location`` (a directory) if it exists: a task's old result."""
    import pyarrow.fs as pafs

    fs, path = resolve(location)
    local = local_path(fs, path)
    if local is not None:
        if local.is_dir():
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
    elif fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
