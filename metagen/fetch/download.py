"""Resumable HTTP(S) downloads with size and checksum checks, and zip extraction that stays inside its folder.

Standard library only (``urllib``, ``zipfile``, ``hashlib``): nothing to install for ``python -m metagen.fetch``.

* A download goes to ``<file>.partial``; an interrupted transfer (connection dropped, fewer bytes than the
  server announced) keeps it, and the next attempt asks for the rest with an HTTP ``Range`` request (a server
  that answers the whole file instead is read from the start). Attempts are retried a few times, then the error
  says to rerun the same command, which resumes.
* A finished file is checked against the size and the sha256 / md5 the source publishes (when it publishes one)
  before it is renamed into place; a mismatch deletes it.
* Extraction refuses members that would land outside the destination (absolute paths, ``..``, symbolic links)
  and archives whose CRCs do not match, and moves files into place only after the whole archive extracted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

USER_AGENT = "metagen-fetch/1 (+https://github.com/; python-urllib)"
CHUNK = 1 << 16
PROGRESS_EVERY_S = 1.0

Progress = Callable[[str], None]


class FetchError(RuntimeError):
    """A download or extraction that failed; the message names the URL and what to do."""


def stderr_progress(line: str) -> None:
    """Progress lines on stderr (the default reporter)."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Expected:
    """What the source publishes about a file: its size in bytes, sha256 and/or md5 (hex); ``None`` = unknown."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class DownloadSettings:
    """How hard to try: ``attempts`` per file, ``timeout_s`` without data before an attempt fails, and the
    wait before a retry (``backoff_s``, doubling each time, at most 30 s)."""

    attempts: int = 3
    timeout_s: float = 60.0
    backoff_s: float = 2.0


DEFAULT_SETTINGS = DownloadSettings()


class _Interrupted(Exception):
    """The transfer stopped before the end; the partial file is kept for a resumed attempt."""


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - loop always returns


def _hashes(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def check_file(path: Path, expected: Expected, url: str) -> str:
    """The file's sha256 after checking size and published checksums; :class:`FetchError` on a mismatch."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise FetchError(
            f"{url}: got {size} bytes, the source publishes {expected.size}; the file was deleted, rerun the command "
            "(if it repeats, the source changed: check the URL or report it)"
        )
    sha, md5 = _hashes(path)
    for name, want, got in (("sha256", expected.sha256, sha), ("md5", expected.md5, md5)):
        if want is not None and want.lower() != got:
            raise FetchError(
                f"{url}: {name} {got} does not match the published {want}; the file was deleted, rerun the command "
                "(if it repeats, the source changed or a proxy alters the download)"
            )
    return sha


def _open(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    assert isinstance(response, http.client.HTTPResponse)
    return response


def _transfer(url: str, partial: Path, expected: Expected, timeout_s: float, progress: Progress, label: str) -> None:
    """One attempt: continue ``partial`` from its current size (or restart when the server ignores the range)."""
    offset = partial.stat().st_size if partial.exists() else 0
    if expected.size is not None and offset >= expected.size:
        if offset == expected.size:
            return
        partial.unlink()
        offset = 0
    try:
        response = _open(url, offset, timeout_s)
    except urllib.error.HTTPError as e:
        if e.code != 416 or offset == 0:
            raise
        # nothing left to send: the partial file is whole if it has the size the server states (bytes */SIZE)
        stated = (e.headers.get("Content-Range") or "").rpartition("/")[2]
        if stated.isdigit() and int(stated) == offset:
            return
        partial.unlink()
        raise _Interrupted(f"the server refused to resume at byte {offset} (HTTP 416); starting again") from e
    with response:
        if offset > 0 and response.status != 206:
            offset = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else expected.size
        received = offset
        last = time.monotonic()
        with partial.open("ab" if offset > 0 else "wb") as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    received += len(block)
                    if time.monotonic() - last >= PROGRESS_EVERY_S:
                        last = time.monotonic()
                        share = f" ({100 * received / total:.0f} %)" if total else ""
                        progress(f"  {label}: {_human(received)} of {_human(total) if total else '?'}{share}")
            except (OSError, http.client.HTTPException) as e:
                raise _Interrupted(f"{type(e).__name__}: {e}") from e
        if total is not None and received < total:
            raise _Interrupted(f"the connection closed after {received} of {total} bytes")


def download(
    url: str,
    dest: Path,
    expected: Expected = Expected(),
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress = stderr_progress,
) -> str:
    """Download ``url`` to ``dest`` (resumable through ``dest.partial``) and return its sha256.

    An existing ``dest`` that passes the checks is kept (nothing is downloaded). A failed attempt is retried as
    ``settings`` say.

    Raises:
        FetchError: an HTTP error (404, 403, ...), an unreachable host, a transfer still incomplete after
            ``settings.attempts`` tries (the partial file is kept: rerun to resume), or a size / checksum mismatch
            (the file is deleted).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        try:
            return check_file(dest, expected, url)
        except FetchError:
            dest.unlink()
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        progress(f"  {dest.name}: resuming from {_human(partial.stat().st_size)}")
    else:
        progress(f"  {dest.name}: downloading {url}")
    reason = ""
    attempts = settings.attempts
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, partial, expected, settings.timeout_s, progress, dest.name)
            break
        except urllib.error.HTTPError as e:
            if e.code < 500 or attempt == attempts:
                raise FetchError(_http_advice(url, e.code, str(e.reason))) from e
            reason = f"HTTP {e.code} {e.reason}"
        except urllib.error.URLError as e:
            if attempt == attempts:
                raise FetchError(
                    f"cannot reach {url} ({e.reason}); check the internet connection (and HTTPS_PROXY behind a "
                    f"proxy), or download the file by hand to {dest}"
                ) from e
            reason = str(e.reason)
        except (_Interrupted, TimeoutError, ConnectionError) as e:
            reason = str(e)
            if attempt == attempts:
                size = partial.stat().st_size if partial.exists() else 0
                raise FetchError(
                    f"the download of {url} stopped ({reason}) with {size} bytes in {partial}; rerun the same "
                    "command to resume it"
                ) from e
        progress(f"  {dest.name}: attempt {attempt} of {attempts} failed ({reason}); retrying")
        time.sleep(min(settings.backoff_s * 2 ** (attempt - 1), 30.0))
    try:
        sha = check_file(partial, expected, url)
    except FetchError:
        partial.unlink()
        raise
    os.replace(partial, dest)
    progress(f"  {dest.name}: {_human(dest.stat().st_size)}, sha256 {sha[:16]}...")
    return sha


def _http_advice(url: str, code: int, reason: str) -> str:
    if code == 404:
        what = "the file is not there (moved or renamed); check the URL, or pass a mirror (--help lists the flags)"
    elif code in (401, 403):
        what = "access is refused; the host may require a login or block this network"
    else:
        what = "the server refused the request; try again later"
    return f"{url}: HTTP {code} {reason}: {what}"


def read_small(url: str, limit: int, timeout_s: float = 60.0) -> bytes:
    """At most ``limit`` bytes of ``url`` (errors as :class:`FetchError`); for pointer and listing files."""
    try:
        with _open(url, 0, timeout_s) as response:
            return bytes(response.read(limit))
    except urllib.error.HTTPError as e:
        raise FetchError(_http_advice(url, e.code, str(e.reason))) from e
    except urllib.error.URLError as e:
        raise FetchError(f"cannot reach {url} ({e.reason}); check the internet connection (and HTTPS_PROXY)") from e
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise FetchError(f"reading {url} failed ({e}); rerun the command") from e


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _member_path(info: zipfile.ZipInfo, archive_url: str) -> PurePosixPath | None:
    """The member's relative path (``None`` for a directory entry); :class:`FetchError` for an unsafe one."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise FetchError(
            f"the archive from {archive_url} holds a member outside its folder ({info.filename!r}); it was not "
            "extracted (a damaged or malicious archive): delete it and check the source"
        )
    if stat.S_ISLNK(mode):
        raise FetchError(
            f"the archive from {archive_url} holds a symbolic link ({info.filename!r}); it was not extracted"
        )
    return None if info.is_dir() else path


def extract_zip(archive: Path, dest: Path, archive_url: str) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely and return the files written (merged into existing folders).

    Everything is extracted to a temporary folder inside ``dest`` first, so a bad member or CRC leaves ``dest``
    as it was.

    Raises:
        FetchError: not a zip, a CRC error, or a member that would land outside ``dest`` (see module docstring).
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise FetchError(
            f"the file from {archive_url} is not a readable zip archive ({e}); rerun to download it again"
        ) from e
    written: list[Path] = []
    with zf, tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
        members = [(info, _member_path(info, archive_url)) for info in zf.infolist()]
        try:
            for info, rel in members:
                if rel is None:
                    continue
                target = Path(tmp, *rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
            raise FetchError(
                f"the archive from {archive_url} is damaged ({e}); nothing was extracted, rerun to download it again"
            ) from e
        for _, rel in members:
            if rel is None:
                continue
            final = dest.joinpath(*rel.parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp, *rel.parts), final)
            written.append(final)
    return written
