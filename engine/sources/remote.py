"""Source edge for files served over HTTP(S): fetched with retries, cached by (data source, task).

A fetch goes to a temporary file and is renamed when complete, so a crash or a dropped connection
never leaves a half-written file that a later run would take for the source. A copy younger than
`cache_ttl_seconds` is reused when the same task reads the same source again (a rerun after a crash,
or a second read in one job), so a flaky server is not asked twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from engine.config.resilience import ResilienceConfig
from engine.errors import SourceError
from engine.resilience.errors import HTTP_REASONS, UNAVAILABLE, TransientSourceError, transient_reason
from engine.resilience.retry import read_resiliently

REMOTE_SCHEMES = ("http://", "https://")
log = logging.getLogger("engine.sources")


def is_remote(path: str) -> bool:
    return path.startswith(REMOTE_SCHEMES)


def _retry_after(err: HTTPError) -> float | None:
    value = err.headers.get("Retry-After") if err.headers else None
    return float(value) if value and value.strip().isdigit() else None


def _download(url: str, source: str, target: Path, timeout: float) -> Path:
    """One attempt: stream the file to a temporary name, then rename it into place."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        request = Request(url, headers={"User-Agent": "featurelake"})
        with urlopen(request, timeout=timeout) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        partial.replace(target)
    except HTTPError as err:
        reason = HTTP_REASONS.get(err.code)
        if reason is None:
            raise SourceError(f"source {source}: HTTP {err.code} {err.reason} from {url}") from err
        raise TransientSourceError(f"HTTP {err.code} {err.reason} from {url}", reason, _retry_after(err)) from err
    except (URLError, TimeoutError, ConnectionError) as err:
        detail = getattr(err, "reason", err)
        raise TransientSourceError(f"{detail} ({url})", transient_reason(err) or UNAVAILABLE) from err
    finally:
        partial.unlink(missing_ok=True)
    return target


def fetch(url: str, *, source: str, task: str, staging_dir: Path, cfg: ResilienceConfig) -> Path:
    """The local copy of `url`: cached when fresh enough, else downloaded with retries behind the circuit."""
    key = hashlib.sha256(f"{source}\n{task}\n{url}".encode()).hexdigest()[:16]
    folder = staging_dir / "remote" / key
    target = folder / Path(urlparse(url).path).name
    stamp = folder / "fetched.json"
    if cfg.cache_ttl_seconds and target.exists() and stamp.exists():
        age = time.time() - json.loads(stamp.read_text())["fetched_at"]
        if 0 <= age < cfg.cache_ttl_seconds:
            log.info("source %s: cached copy of %s (%.0f s old) for task %s", source, url, age, task)
            return target
    folder.mkdir(parents=True, exist_ok=True)
    path = read_resiliently(lambda: _download(url, source, target, cfg.timeout_seconds), source=source, cfg=cfg)
    stamp.write_text(json.dumps({"url": url, "task": task, "fetched_at": time.time()}))
    log.info("source %s: fetched %s (%s bytes)", source, url, f"{path.stat().st_size:,}")
    return path
