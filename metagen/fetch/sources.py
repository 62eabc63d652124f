"""Where the paper's data lives and how each source is laid out once fetched.

* **Quick-Tune meta-dataset** (``quicktune/<version>``): ``<version>.zip`` of the ``sebastianpinedaar/hpo-data``
  GitHub repository, the link of the QuickTune README (HEAD ``cb66122``). A Git LFS pointer served in place
  of the zip (``oid sha256:...``, ``size ...``) is followed to GitHub's LFS media host, and its sha256 and size are
  checked. The zips are extracted into ``DEST/quicktune/``; ``python -m metagen.store import-quicktune`` reads
  that folder (the aggregated layout, ``<version>/*.json`` or ``qt_metadataset/<version>/*.json``).
* **Meta-Album datasets** (``meta-album/<version>[/<set>]``, ``openml/<id>``): the OpenML ids of Quick-Tune's
  ``meta_album/download_datasets.py`` (10 per set for micro and mini, 9 for extended). For each id: the OpenML
  description (``api/v1/json/data/<id>``) names the dataset and its file bucket (``minio_url``); every object of
  the bucket is downloaded (S3 ``ListObjectsV2``; size and, for single-part objects, the md5 ETag checked), zips
  in it are extracted, and the folder that holds ``labels.csv`` and ``info.json`` becomes
  ``DEST/meta-album/<version>/<set>/<CODE>`` (Quick-Tune's ``mtlbm/<version>/<set>/<CODE>``), checked by
  ``metagen.datasets.load_dataset``. ``<CODE>`` is the OpenML name without ``Meta_Album_`` and the version suffix.

A second run finds the ``DEST/.fetch/<item>.json`` markers and downloads nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metagen.fetch.download import (
    DEFAULT_SETTINGS,
    DownloadSettings,
    Expected,
    FetchError,
    Progress,
    download,
    extract_zip,
    read_small,
    stderr_progress,
)

QUICKTUNE_BASE = "https://raw.githubusercontent.com/sebastianpinedaar/hpo-data/refs/heads/main/"
"""Folder of ``micro.zip``, ``mini.zip``, ``extended.zip`` (QuickTune README, HEAD cb66122)."""
LFS_BASE = "https://media.githubusercontent.com/media/sebastianpinedaar/hpo-data/refs/heads/main/"
"""GitHub's host of the same files' contents when the repository keeps them in Git LFS."""
OPENML_API = "https://www.openml.org/api/v1/json"
QUICKTUNE_VERSIONS = ("micro", "mini", "extended")

META_ALBUM_OPENML: dict[str, dict[str, tuple[int, ...]]] = {
    "micro": {
        "set0": (44241, 44238, 44239, 44242, 44237, 44246, 44245, 44244, 44240, 44243),
        "set1": (44313, 44248, 44249, 44314, 44312, 44315, 44251, 44250, 44247, 44252),
        "set2": (44275, 44276, 44272, 44273, 44278, 44277, 44279, 44274, 44271, 44280),
    },
    "mini": {
        "set0": (44285, 44282, 44283, 44286, 44281, 44290, 44289, 44288, 44284, 44287),
        "set1": (44298, 44292, 44293, 44299, 44297, 44300, 44295, 44294, 44291, 44296),
        "set2": (44305, 44306, 44302, 44303, 44308, 44307, 44309, 44304, 44301, 44310),
    },
    "extended": {
        "set0": (44320, 44317, 44318, 44321, 44316, 44324, 44323, 44322, 44319),
        "set1": (44331, 44326, 44327, 44332, 44330, 44333, 44329, 44328, 44325),
        "set2": (44338, 44340, 44335, 44336, 44342, 44341, 44343, 44337, 44334),
    },
}
"""OpenML ids of the Meta-Album datasets per version and set, as in Quick-Tune's ``meta_album/download_datasets.py``."""

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_S3_NS = re.compile(r"^\{[^}]*\}")


@dataclass(frozen=True)
class Mirrors:
    """Base URLs of the sources (a mirror or a local test server can replace each)."""

    quicktune: str = QUICKTUNE_BASE
    lfs: str = LFS_BASE
    openml_api: str = OPENML_API


@dataclass(frozen=True)
class Fetched:
    """One fetched item: what it is, where it is, and whether this run downloaded it."""

    item: str
    path: Path
    downloaded: bool


def _slash(base: str) -> str:
    return base if base.endswith("/") else base + "/"


def _marker(dest: Path, item: str) -> Path:
    return dest / ".fetch" / (re.sub(r"[^A-Za-z0-9._-]", "-", item) + ".json")


def _done(dest: Path, item: str) -> Path | None:
    """The fetched path recorded for ``item`` if its marker exists and the path is still there."""
    marker = _marker(dest, item)
    if not marker.is_file():
        return None
    path = dest / json.loads(marker.read_text())["path"]
    return path if path.exists() else None


def _record(dest: Path, item: str, path: Path, **info: Any) -> None:
    marker = _marker(dest, item)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"item": item, "path": str(path.relative_to(dest)), **info}, indent=1) + "\n")


# --------------------------------------------------------------------------------------------
# Quick-Tune meta-dataset
# --------------------------------------------------------------------------------------------


def parse_lfs_pointer(text: bytes) -> Expected | None:
    """(size, sha256) of a Git LFS pointer file; ``None`` if ``text`` is not one."""
    if not text.startswith(LFS_POINTER):
        return None
    fields = dict(line.split(" ", 1) for line in text.decode("ascii", "replace").splitlines() if " " in line)
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not size.strip().isdigit():
        return None
    return Expected(size=int(size), sha256=oid.removeprefix("sha256:").strip())


def quicktune_import_source(version_dir: Path) -> Path:
    """The folder to pass to ``import-quicktune`` for a version folder of the aggregated layout."""
    parent = version_dir.parent
    return parent.parent if parent.name == "qt_metadataset" else parent


def _find_version(root: Path, version: str) -> Path | None:
    curves = root.rglob("eval_top1.json")
    hits = sorted(p.parent for p in curves if p.parent.name == version and (p.parent / "args.json").is_file())
    return hits[0] if hits else None


def fetch_quicktune(
    version: str,
    dest: Path,
    mirrors: Mirrors = Mirrors(),
    *,
    keep_archive: bool = False,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress = stderr_progress,
) -> Fetched:
    """Download and extract Quick-Tune's ``<version>.zip`` into ``dest/quicktune`` (see the module docstring)."""
    if version not in QUICKTUNE_VERSIONS:
        raise ValueError(f"unknown Quick-Tune version {version!r}; known: {list(QUICKTUNE_VERSIONS)}")
    item = f"quicktune/{version}"
    found = _done(dest, item)
    if found is not None:
        progress(f"{item}: already fetched ({found}); nothing to do")
        return Fetched(item, found, False)
    url = _slash(mirrors.quicktune) + f"{version}.zip"
    progress(f"{item}: {url}")
    expected = parse_lfs_pointer(read_small(url, 1024))
    if expected is not None:
        url = _slash(mirrors.lfs) + f"{version}.zip"
        progress(f"{item}: Git LFS pointer (size {expected.size}, sha256 {expected.sha256}); contents from {url}")
    archive = dest / ".fetch" / f"quicktune-{version}.zip"
    sha = download(url, archive, expected or Expected(), settings=settings, progress=progress)
    out = dest / "quicktune"
    try:
        extract_zip(archive, out, url)
    except FetchError:
        archive.unlink()
        raise
    version_dir = _find_version(out, version)
    if version_dir is None:
        raise FetchError(
            f"the archive from {url} extracted into {out} but holds no {version}/eval_top1.json with args.json, "
            "the aggregated layout import-quicktune reads; the archive's layout changed: look into the folder "
            "and pass the folder that holds the version to import-quicktune"
        )
    _record(dest, item, version_dir, url=url, sha256=sha)
    if not keep_archive:
        archive.unlink()
    return Fetched(item, version_dir, True)


# --------------------------------------------------------------------------------------------
# Meta-Album datasets (OpenML)
# --------------------------------------------------------------------------------------------


def meta_album_place(openml_id: int) -> tuple[str, str] | None:
    """(version, set) of a catalogued Meta-Album OpenML id."""
    for version, sets in META_ALBUM_OPENML.items():
        for set_name, ids in sets.items():
            if openml_id in ids:
                return version, set_name
    return None


def dataset_code(openml_name: str) -> str:
    """``Meta_Album_PLT_VIL_Micro`` -> ``PLT_VIL``; other names are made file-name safe."""
    code = re.sub(r"^meta[_-]?album[_-]", "", openml_name, flags=re.IGNORECASE)
    code = re.sub(r"[_-](micro|mini|extended)$", "", code, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]", "_", code) or openml_name


def _description(openml_id: int, mirrors: Mirrors) -> dict[str, Any]:
    url = _slash(mirrors.openml_api) + f"data/{openml_id}"
    try:
        desc = json.loads(read_small(url, 1 << 22))["data_set_description"]
    except (ValueError, KeyError, TypeError) as e:
        raise FetchError(f"{url} did not return an OpenML dataset description ({e}); check --openml-api") from e
    if not desc.get("minio_url"):
        raise FetchError(f"OpenML dataset {openml_id} ({url}) names no file bucket (minio_url); it has no image files")
    return dict(desc)


def list_bucket(object_url: str) -> tuple[str, list[tuple[str, int, str | None]]]:
    """(base URL, [(key relative to the bucket folder, size, md5 or None)]) of the folder of ``object_url``.

    ``object_url`` is ``<host>/<bucket>/<prefix...>/<file>`` (OpenML's ``minio_url``); the folder is listed with
    S3 ``ListObjectsV2``, page by page. A multipart ETag (``...-N``) is not an md5 and is not checked.
    """
    parsed = urllib.parse.urlparse(object_url)
    _, bucket, *prefixes, _file = parsed.path.split("/")
    prefix = "/".join(prefixes) + "/" if prefixes else ""
    base = f"{parsed.scheme}://{parsed.netloc}/{bucket}/"
    objects: list[tuple[str, int, str | None]] = []
    token: str | None = None
    while True:
        query = {"list-type": "2", "prefix": prefix, **({"continuation-token": token} if token else {})}
        url = base + "?" + urllib.parse.urlencode(query)
        try:
            root = ET.fromstring(read_small(url, 1 << 24))
        except ET.ParseError as e:
            raise FetchError(f"{url} is not an S3 bucket listing ({e})") from e
        fields = {_S3_NS.sub("", el.tag): el for el in root}
        for el in root:
            if _S3_NS.sub("", el.tag) != "Contents":
                continue
            item = {_S3_NS.sub("", c.tag): (c.text or "") for c in el}
            etag = item.get("ETag", "").strip('"').lower()
            md5 = etag if re.fullmatch(r"[0-9a-f]{32}", etag) else None
            objects.append((item["Key"], int(item.get("Size") or 0), md5))
        truncated = fields.get("IsTruncated")
        token_el = fields.get("NextContinuationToken")
        if truncated is None or (truncated.text or "").lower() != "true" or token_el is None:
            break
        token = token_el.text
    if not objects:
        raise FetchError(f"the bucket folder {base}{prefix} of {object_url} is empty or not listable")
    return base, objects


def _dataset_folder(root: Path) -> Path:
    hits = sorted({p.parent for p in root.rglob("labels.csv") if (p.parent / "info.json").is_file()})
    if len(hits) != 1:
        found = [str(p.relative_to(root)) for p in hits]
        found = found or sorted(str(p.relative_to(root)) for p in root.rglob("*"))[:10]
        raise FetchError(
            f"expected one Meta-Album folder (labels.csv + info.json) in {root}, found {len(hits)}: {found}"
        )
    return hits[0]


def fetch_openml_dataset(
    openml_id: int,
    dest: Path,
    mirrors: Mirrors = Mirrors(),
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress = stderr_progress,
) -> Fetched:
    """Fetch one Meta-Album dataset of OpenML into ``dest/meta-album/<version>/<set>/<CODE>``."""
    item = f"openml/{openml_id}"
    found = _done(dest, item)
    if found is not None:
        progress(f"{item}: already fetched ({found}); nothing to do")
        return Fetched(item, found, False)
    desc = _description(openml_id, mirrors)
    code = dataset_code(str(desc.get("name", openml_id)))
    version, set_name = meta_album_place(openml_id) or ("other", "openml")
    target = dest / "meta-album" / version / set_name / code
    progress(f"{item}: {desc.get('name')} -> {target}")
    base, objects = list_bucket(str(desc["minio_url"]))
    work = dest / ".fetch" / f"openml-{openml_id}"
    prefix_len = len(urllib.parse.urlparse(str(desc["minio_url"])).path.split("/")) - 3
    for key, size, md5 in objects:
        rel = Path(*key.split("/")[prefix_len:])
        if not rel.parts or ".." in rel.parts:
            raise FetchError(f"bucket key {key!r} of {base} is not a file name inside its folder")
        local = work / "files" / rel
        expected = Expected(size=size, md5=md5)
        download(base + urllib.parse.quote(key), local, expected, settings=settings, progress=progress)
        if local.suffix.lower() == ".zip":
            extract_zip(local, work / "files" / rel.parent, base + key)
            local.unlink()
    folder = _dataset_folder(work / "files")
    _check_dataset(folder, item)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.replace(target)
    shutil.rmtree(work)
    _record(dest, item, target, name=desc.get("name"), minio_url=desc["minio_url"])
    return Fetched(item, target, True)


def _check_dataset(folder: Path, item: str) -> None:
    from metagen.datasets import DatasetError, load_dataset

    try:
        load_dataset(folder)
    except DatasetError as e:
        raise FetchError(f"{item}: the downloaded folder {folder} is not a usable Meta-Album dataset: {e}") from e


def meta_album_ids(version: str, set_name: str | None = None) -> list[int]:
    """OpenML ids of a Meta-Album version (all sets, or one)."""
    if version not in META_ALBUM_OPENML:
        raise ValueError(f"unknown Meta-Album version {version!r}; known: {list(META_ALBUM_OPENML)}")
    sets = META_ALBUM_OPENML[version]
    if set_name is not None and set_name not in sets:
        raise ValueError(f"unknown set {set_name!r} of {version}; known: {list(sets)}")
    return [i for s, ids in sets.items() if set_name in (None, s) for i in ids]
