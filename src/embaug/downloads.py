"""Network access that fails fast: cached URL downloads and a reachability probe for the hub.

A URL download goes to a ``.part`` file next to its cache path, with a progress bar; a transfer
that breaks or stalls is resumed (HTTP ``Range``) or, where the server cannot resume, restarted,
a few times with exponential backoff. Only a file whose size matches the server's
``Content-Length`` (and whose SHA-256 matches, where the config gives one) is renamed to its
final name, so a failed download never leaves a file that looks complete. Failing to connect at
all is not retried: with no network a download stops within ``CONNECT_TIMEOUT`` seconds, with
a message that shows the config line pointing the entry at a local copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
from tqdm.auto import tqdm

from .errors import EmbaugError

CONNECT_TIMEOUT = 10.0  # seconds to open a connection; no network fails within this
READ_TIMEOUT = 60.0  # seconds without a byte before a transfer counts as stalled
ATTEMPTS = 4  # transfers per download (the first and three retries)
BACKOFF = 2.0  # seconds before the first retry, doubled before each further one
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHUNK_BYTES = 1 << 16  # a broken transfer loses at most this much
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """The config entry a download is for, to name it in errors: ``datasets.iclr`` etc."""

    section: str  # "datasets" or "models"
    name: str
    example: str  # what a local copy looks like, e.g. "/path/to/iclr24v2.parquet"

    @property
    def label(self) -> str:
        return f"{self.section.rstrip('s')} '{self.name}'"

    def local_copy_hint(self) -> str:
        """The config line that replaces the download by a local copy."""
        return (
            "To use a copy on this machine instead (e.g. without network), point the config at it:\n"
            f"    {self.section}.{self.name}.source: {self.example}"
        )


class _Retryable(Exception):
    """A transfer that failed after connecting (broken, stalled, or a transient HTTP status)."""


def cache_path(url: str, cache_dir: str | Path) -> Path:
    """Where ``url`` is cached: ``CACHE/downloads/HOST/PATH`` (a hash is added for a query string)."""
    parts = urlsplit(url)
    path = PurePosixPath(parts.path.lstrip("/") or "index")
    kept = [p for p in (parts.netloc, *path.parts) if p not in ("", ".", "..")]
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in kept]
    if parts.query:
        safe[-1] = f"{hashlib.sha256(parts.query.encode()).hexdigest()[:12]}-{safe[-1]}"
    return Path(cache_dir, "downloads", *safe)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    return _digest(path, hashlib.sha256())


def file_git_blob(path: str | Path) -> str:
    """The file's Git blob id: SHA-1 of ``blob <size>\\0`` + its bytes, what ``git hash-object`` and
    ``git ls-tree`` show, so a file of a pinned commit can be checked against that commit's tree."""
    digest = hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode(), usedforsecurity=False)
    return _digest(path, digest)


def _digest(path: str | Path, digest) -> str:
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


CHECKSUMS = {"sha256": ("SHA-256", file_sha256), "git_blob": ("Git blob id", file_git_blob)}
"""Config key -> (name in messages, digest of a file) of the checksums a URL source may carry."""


def _mismatches(path: Path, expected: dict[str, str]) -> dict[str, str]:
    """The checksums in ``expected`` that ``path`` does not have: key -> its actual digest."""
    actual = {key: CHECKSUMS[key][1](path) for key in expected}
    return {key: value for key, value in actual.items() if value != expected[key]}


def fetch_url(
    url: str,
    target: str | Path,
    entry: Entry,
    sha256: str | None = None,
    git_blob: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
) -> Path:
    """Download ``url`` to ``target`` unless a verified copy is already there; return ``target``.

    ``sha256`` and ``git_blob`` (config keys ``<section>.<name>.sha256`` / ``.git_blob``) are
    checked when given; a cached file that no longer matches them is downloaded again.
    """
    target = Path(target)
    given = {"sha256": sha256, "git_blob": git_blob}
    expected = {key: value.lower() for key, value in given.items() if value}
    if target.exists() and not _mismatches(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, entry, connect_timeout, read_timeout)
            break
        except _Retryable as exc:
            if attempt == attempts:
                raise EmbaugError(
                    f"{entry.label}: download of {url} failed after {attempts} attempts ({exc}); "
                    f"the partial file {part} is kept and the next run resumes it. "
                    f"{entry.local_copy_hint()}"
                ) from exc
            wait = backoff * 2 ** (attempt - 1)
            LOG.warning("%s: %s; retry %d/%d in %g s", entry.label, exc, attempt, attempts - 1, wait)
            time.sleep(wait)
    mismatched = _mismatches(part, expected)
    if mismatched:
        key, actual = next(iter(mismatched.items()))
        part.unlink()
        raise EmbaugError(
            f"{entry.label}: {url} has {CHECKSUMS[key][0]} {actual}, but the config expects "
            f"{expected[key]} (key {entry.section}.{entry.name}.{key}); the download was deleted. "
            "Check the URL and the checksum."
        )
    if "sha256" not in expected:
        LOG.info(
            "%s: %s has SHA-256 %s (set %s.%s.sha256 to check it on every download)",
            entry.label, url, file_sha256(part), entry.section, entry.name,
        )  # fmt: skip
    os.replace(part, target)
    return target


def _transfer(url: str, part: Path, entry: Entry, connect_timeout: float, read_timeout: float) -> None:
    """One HTTP GET into ``part``, resuming what an earlier attempt left there."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte counts must match Content-Length
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=(connect_timeout, read_timeout))
    except requests.ReadTimeout as exc:
        raise _Retryable(f"no response within {read_timeout:g} s") from exc
    except requests.RequestException as exc:
        raise EmbaugError(
            f"{entry.label}: cannot download {url}: cannot connect ({exc}). {entry.local_copy_hint()}"
        ) from exc
    with response:
        if response.status_code == 416:  # the partial file does not fit the remote file: restart
            part.unlink()
            raise _Retryable("the server cannot resume the partial file")
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code} {response.reason}")
        if response.status_code >= 400:
            raise EmbaugError(
                f"{entry.label}: cannot download {url}: HTTP {response.status_code} {response.reason} "
                f"(key {entry.section}.{entry.name}.source). {entry.local_copy_hint()}"
            )
        if response.status_code != 206:  # a full response (the server ignored or got no Range)
            have = 0
        total = _total_size(response, have)
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.label)
        with open(part, "ab" if have else "wb") as out, bar:
            try:
                for block in response.iter_content(CHUNK_BYTES):
                    out.write(block)
                    bar.update(len(block))
            except requests.RequestException as exc:
                raise _Retryable(f"the transfer broke after {bar.n} bytes ({exc})") from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retryable(f"got {size} of {total} bytes")


def _total_size(response: requests.Response, offset: int) -> int | None:
    """The full file size the server announces (``Content-Range`` total or ``Content-Length``)."""
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", content_range.strip())
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def hub_unreachable(timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why the Hugging Face hub cannot be used now (offline mode, no connection), else ``None``.

    One HEAD request with a short timeout, instead of the hub client's retries with backoff
    (close to a minute per file when there is no network).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        requests.head(constants.ENDPOINT, timeout=(timeout, timeout), allow_redirects=False)
    except requests.RequestException as exc:
        return f"cannot reach {constants.ENDPOINT} ({exc})"
    return None


def hub_error(entry: Entry, what: str, offline: str | None, exc: Exception) -> EmbaugError:
    """The error for a hub download that failed: why, and the config line for a local copy."""
    reason = f"{offline}, and it is not in the local cache" if offline else str(exc)
    return EmbaugError(f"{entry.label}: cannot load {what} ({reason}). {entry.local_copy_hint()}")
