"""Staging: copy a source file once, atomically, where every Spark executor can read it."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

from engine.errors import SourceError


def stage_file(path: Path, staging_dir: Path) -> Path:
    """Copy a source file into the staging folder once, atomically, extracting a .zip's single CSV (Spark
    cannot read .zip). Staging puts every file where all of Spark can read it: on Databricks a Unity
    Catalog volume, where the driver's own disk would be invisible to the executors."""
    if not path.exists():
        raise SourceError(f"source file not found: {path}")
    if path.suffix != ".zip" and path.resolve().is_relative_to(staging_dir.resolve()):
        return path
    # One folder per source folder, so two sources' files of the same name never overwrite each other.
    folder = staging_dir / hashlib.sha256(str(path.resolve().parent).encode()).hexdigest()[:12]
    target = folder / (path.stem if path.suffix == ".zip" else path.name)
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
                if len(members) != 1:
                    raise SourceError(f"source file {path} should hold one CSV file, it holds {len(members)}")
                with archive.open(members[0]) as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(path, partial)
        partial.replace(target)
    except (zipfile.BadZipFile, OSError) as err:
        partial.unlink(missing_ok=True)
        raise SourceError(f"cannot stage source file {path}: {err}") from err
    return target
