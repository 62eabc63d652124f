"""``metagen.fetch`` against fixture archives served by a local HTTP server on 127.0.0.1 (built in-process)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import RunConfig
from benchmark.runner import run_benchmark
from metagen.fetch import Expected, FetchError, Mirrors, download, extract_zip, fetch_openml_dataset, fetch_quicktune
from metagen.fetch.cli import main
from metagen.fetch.download import DownloadSettings
from metagen.fetch.sources import dataset_code, parse_lfs_pointer
from metagen.store.importers.quicktune import import_quicktune
from tests.datasets.conftest import write_metaalbum
from tests.store.test_importers import QT_RUNS, write_aggregated

NO_WAIT = DownloadSettings(backoff_s=0.0, timeout_s=5.0)
ONCE = DownloadSettings(attempts=1, backoff_s=0.0, timeout_s=5.0)


def quiet(_: str) -> None:
    """A progress reporter that prints nothing."""


@dataclass
class Files:
    """What the fixture server serves: path -> bytes, and how it misbehaves."""

    content: dict[str, bytes] = field(default_factory=dict)
    truncate_once: set[str] = field(default_factory=set)
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    files: Files

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        files = self.files
        path = self.path
        files.requests.append((path, self.headers.get("Range")))
        if path not in files.content:
            self.send_error(404, "Not Found")
            return
        body = files.content[path]
        start = 0
        rng = self.headers.get("Range")
        if rng and not files.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if path in files.truncate_once:  # announce everything, send half, drop the connection
            files.truncate_once.discard(path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[tuple[str, Files]]:
    files = Files()
    handler = type("Handler", (_Handler,), {"files": files})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()


def zip_folder(root: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(root).as_posix())
    return buf.getvalue()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@pytest.fixture
def qt_zip(tmp_path: Path) -> bytes:
    """micro.zip as the paper's repository lays it out: qt_metadataset/micro/*.json + meta-features."""
    src = tmp_path / "qt-src"
    write_aggregated(src / "qt_metadataset")
    return zip_folder(src)


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def test_truncated_download_resumes_with_a_range_request(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    data = bytes(range(256)) * 400
    files.content["/f.bin"] = data
    files.truncate_once.add("/f.bin")
    lines: list[str] = []
    expected = Expected(size=len(data))
    sha = download(f"{base}/f.bin", tmp_path / "f.bin", expected, progress=lines.append, settings=NO_WAIT)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert sha == hashlib.sha256(data).hexdigest()
    assert files.requests == [("/f.bin", None), ("/f.bin", f"bytes={len(data) // 2}-")]
    assert any("retrying" in line for line in lines)
    assert not (tmp_path / "f.bin.partial").exists()


def test_interrupted_download_is_kept_and_resumed_by_the_next_run(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    data = b"x" * 10_000
    files.content["/f.bin"] = data
    files.truncate_once.add("/f.bin")
    with pytest.raises(FetchError, match="rerun the same command to resume"):
        download(f"{base}/f.bin", tmp_path / "f.bin", settings=ONCE, progress=quiet)
    assert (tmp_path / "f.bin.partial").stat().st_size == len(data) // 2
    download(f"{base}/f.bin", tmp_path / "f.bin", settings=ONCE, progress=quiet)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert files.requests[-1] == ("/f.bin", f"bytes={len(data) // 2}-")


def test_a_server_that_ignores_the_range_is_read_from_the_start(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    data = b"0123456789" * 1000
    files.content["/f.bin"] = data
    files.ignore_range = True
    (tmp_path / "f.bin.partial").write_bytes(b"garbage")
    download(f"{base}/f.bin", tmp_path / "f.bin", progress=quiet, settings=NO_WAIT)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_a_partial_file_as_long_as_the_file_is_finished_and_a_longer_one_restarts(
    server: tuple[str, Files], tmp_path: Path
) -> None:
    base, files = server
    data = b"abcdef" * 500
    files.content["/f.bin"] = data
    (tmp_path / "f.bin.partial").write_bytes(data)
    download(f"{base}/f.bin", tmp_path / "f.bin", progress=quiet, settings=NO_WAIT)
    assert (tmp_path / "f.bin").read_bytes() == data and files.requests == [("/f.bin", f"bytes={len(data)}-")]
    (tmp_path / "g.bin.partial").write_bytes(data + b"junk")
    files.content["/g.bin"] = data
    download(f"{base}/g.bin", tmp_path / "g.bin", progress=quiet, settings=NO_WAIT)
    assert (tmp_path / "g.bin").read_bytes() == data


def test_checksum_mismatch_is_refused_and_deleted(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    files.content["/f.bin"] = b"abc"
    with pytest.raises(FetchError, match=r"f\.bin: sha256 .* does not match the published 00"):
        download(f"{base}/f.bin", tmp_path / "f.bin", Expected(sha256="00" * 32), progress=quiet, settings=NO_WAIT)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.partial").exists()


def test_bad_url_names_the_url_and_the_status(server: tuple[str, Files], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(FetchError, match=rf"{base}/missing.zip: HTTP 404 .*check the URL"):
        download(f"{base}/missing.zip", tmp_path / "m.zip", progress=quiet, settings=NO_WAIT)


def test_unreachable_host_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"cannot reach http://127.0.0.1:9/x.zip .*internet connection"):
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", settings=ONCE, progress=quiet)


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------


def test_extraction_refuses_path_traversal(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escape.txt", "evil")
    with pytest.raises(FetchError, match=r"outside its folder \('../escape.txt'\)"):
        extract_zip(archive, tmp_path / "out", "http://example/evil.zip")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()


def test_extraction_refuses_symlinks_and_absolute_paths(tmp_path: Path) -> None:
    for name, make in (
        ("abs.zip", lambda zf: zf.writestr("/etc/x", "evil")),
        ("link.zip", lambda zf: zf.writestr(_symlink_info("lnk"), "/etc/passwd")),
    ):
        archive = tmp_path / name
        with zipfile.ZipFile(archive, "w") as zf:
            make(zf)
        with pytest.raises(FetchError, match=r"outside its folder|symbolic link"):
            extract_zip(archive, tmp_path / "out", f"http://example/{name}")


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0
    return info


# --------------------------------------------------------------------------------------------
# Quick-Tune meta-dataset: fetch -> import
# --------------------------------------------------------------------------------------------


def test_quicktune_lfs_pointer_is_followed_checked_and_importable(
    server: tuple[str, Files], tmp_path: Path, qt_zip: bytes
) -> None:
    base, files = server
    files.content["/raw/micro.zip"] = lfs_pointer(qt_zip)
    files.content["/lfs/micro.zip"] = qt_zip
    mirrors = Mirrors(quicktune=f"{base}/raw", lfs=f"{base}/lfs")
    dest = tmp_path / "data"
    fetched = fetch_quicktune("micro", dest, mirrors, progress=quiet, settings=NO_WAIT)
    assert fetched.downloaded and fetched.path == dest / "quicktune" / "qt_metadataset" / "micro"
    assert not list((dest / ".fetch").glob("*.zip"))  # archive removed after extraction
    report = import_quicktune(dest / "quicktune", tmp_path / "store")
    assert report.versions == ["micro"] and report.runs_imported == len(QT_RUNS) and not report.runs_skipped
    replays = run_benchmark(  # fetch -> import -> benchmark
        RunConfig(store=str(tmp_path / "store"), out=str(tmp_path / "runs"), version="micro",
                  methods=["random_search"], seeds=[0], budget_s=60.0, progress=False)
    )  # fmt: skip
    assert replays.done == 2 and not replays.failed  # one cell per imported dataset (PNU, BRD)
    n_requests = len(files.requests)
    again = fetch_quicktune("micro", dest, mirrors, progress=quiet, settings=NO_WAIT)
    assert not again.downloaded and again.path == fetched.path
    assert len(files.requests) == n_requests  # idempotent: nothing requested


def test_quicktune_zip_served_directly_is_used(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    files.content["/raw/mini.zip"] = _version_zip(tmp_path, "mini")  # top level mini/, no qt_metadataset/
    fetched = fetch_quicktune("mini", tmp_path / "d", Mirrors(quicktune=f"{base}/raw"), progress=quiet)
    assert fetched.path.name == "mini" and (fetched.path / "args.json").is_file()


def _version_zip(tmp_path: Path, version: str) -> bytes:
    src = tmp_path / f"src-{version}"
    write_aggregated(src, version)
    return zip_folder(src)


def test_corrupt_quicktune_archive_is_refused(server: tuple[str, Files], tmp_path: Path, qt_zip: bytes) -> None:
    base, files = server
    broken = bytearray(qt_zip)
    middle = len(broken) // 3
    broken[middle : middle + 64] = bytes(64)  # damage member data; the central directory stays readable
    files.content["/raw/micro.zip"] = bytes(broken)
    dest = tmp_path / "data"
    with pytest.raises(FetchError, match=rf"{base}/raw/micro.zip is damaged|{base}/raw/micro.zip is not a readable"):
        fetch_quicktune("micro", dest, Mirrors(quicktune=f"{base}/raw"), progress=quiet, settings=NO_WAIT)
    assert not (dest / "quicktune").exists() or not any((dest / "quicktune").rglob("*.json"))
    assert not (dest / ".fetch" / "quicktune-micro.zip").exists()  # deleted, so a rerun downloads it again
    assert not (dest / ".fetch" / "quicktune-micro.json").exists()


def test_lfs_checksum_mismatch_is_refused(server: tuple[str, Files], tmp_path: Path, qt_zip: bytes) -> None:
    base, files = server
    files.content["/raw/micro.zip"] = lfs_pointer(qt_zip + b"!")
    files.content["/lfs/micro.zip"] = qt_zip
    with pytest.raises(FetchError, match="bytes, the source publishes"):
        fetch_quicktune("micro", tmp_path / "d", Mirrors(quicktune=f"{base}/raw", lfs=f"{base}/lfs"), progress=quiet)


def test_parse_lfs_pointer() -> None:
    assert parse_lfs_pointer(lfs_pointer(b"abc")) == Expected(size=3, sha256=hashlib.sha256(b"abc").hexdigest())
    assert parse_lfs_pointer(b"PK\x03\x04...") is None


# --------------------------------------------------------------------------------------------
# Meta-Album via OpenML: fetch -> loadable dataset
# --------------------------------------------------------------------------------------------


def _serve_openml(files: Files, base: str, tmp_path: Path, openml_id: int, name: str) -> bytes:
    """An OpenML description, an S3 listing of the bucket folder, and a zip of a Meta-Album folder in it."""
    folder = tmp_path / f"ma-{openml_id}" / name
    write_metaalbum(folder, {"a": 6, "b": 6}, info={"dataset_name": name})
    data = zip_folder(folder.parent)
    pq = b"PAR1 not really parquet"
    minio_url = f"{base}/datasets/0004/{openml_id}/dataset_{openml_id}.pq"
    description = {"id": str(openml_id), "name": name, "minio_url": minio_url}
    files.content[f"/api/data/{openml_id}"] = json.dumps({"data_set_description": description}).encode()
    keys = [(f"0004/{openml_id}/dataset_{openml_id}.pq", pq), (f"0004/{openml_id}/{name}.zip", data)]
    contents = "".join(
        f"<Contents><Key>{k}</Key><Size>{len(v)}</Size><ETag>&quot;{hashlib.md5(v).hexdigest()}&quot;</ETag></Contents>"
        for k, v in keys
    )
    listing = (
        '<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>datasets</Name><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    )
    files.content[f"/datasets/?list-type=2&prefix=0004%2F{openml_id}%2F"] = listing.encode()
    for k, v in keys:
        files.content[f"/datasets/{k}"] = v
    return data


def test_meta_album_dataset_lands_where_quicktune_reads_it(server: tuple[str, Files], tmp_path: Path) -> None:
    from metagen.datasets import load_dataset

    base, files = server
    _serve_openml(files, base, tmp_path, 44241, "Meta_Album_PLT_VIL_Micro")
    dest = tmp_path / "data"
    fetched = fetch_openml_dataset(44241, dest, Mirrors(openml_api=f"{base}/api"), progress=quiet, settings=NO_WAIT)
    assert fetched.path == dest / "meta-album" / "micro" / "set0" / "PLT_VIL"
    ds = load_dataset(fetched.path)
    assert len(ds) == 12 and ds.classes == ("a", "b")
    assert not (dest / ".fetch" / "openml-44241").exists()
    n = len(files.requests)
    assert not fetch_openml_dataset(44241, dest, Mirrors(openml_api=f"{base}/api"), progress=quiet).downloaded
    assert len(files.requests) == n


def test_meta_album_md5_mismatch_is_refused(server: tuple[str, Files], tmp_path: Path) -> None:
    base, files = server
    _serve_openml(files, base, tmp_path, 44238, "Meta_Album_BCT_Micro")
    files.content["/datasets/0004/44238/Meta_Album_BCT_Micro.zip"] = b"y" * len(
        files.content["/datasets/0004/44238/Meta_Album_BCT_Micro.zip"]
    )
    with pytest.raises(FetchError, match=r"md5 .* does not match"):
        fetch_openml_dataset(44238, tmp_path / "d", Mirrors(openml_api=f"{base}/api"), progress=quiet)


def test_dataset_code() -> None:
    assert dataset_code("Meta_Album_PLT_VIL_Micro") == "PLT_VIL"
    assert dataset_code("Meta_Album_MD_5_BIS_Mini") == "MD_5_BIS"
    assert dataset_code("something else") == "something_else"


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def test_cli_fetches_prints_the_import_command_and_exit_codes(
    server: tuple[str, Files], tmp_path: Path, qt_zip: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    base, files = server
    files.content["/raw/micro.zip"] = qt_zip
    dest = tmp_path / "d"
    args = ["quicktune/micro", str(dest), "--quicktune-base", f"{base}/raw"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"next: python -m metagen.store import-quicktune {dest / 'quicktune'} STORE" in out
    assert main(args) == 0 and "(already there)" in capsys.readouterr().out
    assert main(["quicktune/tiny", str(dest)]) == 2
    assert "unknown Quick-Tune version 'tiny'" in capsys.readouterr().err
    assert main(["quicktune/mini", str(dest), "--quicktune-base", f"{base}/raw", "--attempts", "1"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
