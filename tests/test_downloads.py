"""URL downloads against a local HTTP server: resume, retry, size and checksum checks, fast failure.

Every server here runs on 127.0.0.1 in a thread; nothing touches the network.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from embaug.data.sources import download, load_corpus
from embaug.downloads import cache_path, file_git_blob, file_sha256
from embaug.errors import EmbaugError

TABLE = pd.DataFrame({"text": [f"document number {i} " * 20 for i in range(400)], "label": ["a", "b"] * 200})
BODY = TABLE.to_csv(index=False).encode()
HALF = len(BODY) // 2
SHA256 = hashlib.sha256(BODY).hexdigest()
FAST = {"connect_timeout": 2.0, "read_timeout": 0.5, "attempts": 3, "backoff": 0.05}
CLOSED_PORT_URL = "http://127.0.0.1:9/iclr24v2.parquet"  # the discard port: nothing listens


@dataclass
class Reply:
    """How the server answers one request: status, where the body stops, pauses, Range support."""

    status: int = 200
    stop: int | None = None  # close the connection after this many body bytes (a broken transfer)
    pause: float = 0.0  # seconds between 4 KiB blocks (a slow server)
    stall: float = 0.0  # seconds of silence at ``stop`` before closing (a stalled transfer)
    ranges: bool = True  # honour `Range: bytes=N-`


Route = Callable[[int], Reply]  # request number for this path (1, 2, ...) -> reply


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def hits(self, path: str) -> list[str | None]:
        """The Range headers of every request for ``path``."""
        return [rng for p, rng in self.requests if p == path]


class Handler(BaseHTTPRequestHandler):
    """Serves ``BODY`` on the routes of the server's ``state``, as each route's ``Reply`` says."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        state.requests.append((path, self.headers.get("Range")))
        route = state.routes.get(path)
        if route is None:
            self.send_error(404)
            return
        reply = route(len(state.hits(path)))
        if reply.status != 200:
            self.send_error(reply.status)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and reply.ranges else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        stop = len(BODY) if reply.stop is None else reply.stop
        try:
            for offset in range(start, stop, 4096):
                self.wfile.write(BODY[offset : min(offset + 4096, stop)])
                time.sleep(reply.pause)
            time.sleep(reply.stall)
        except OSError:  # the client gave up (a stalled transfer)
            pass
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_port}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def resumed_from(server: Server, path: str) -> list[int]:
    """Per request for ``path``: 0 for a full request, else ``HALF`` if it resumed within the first half."""
    starts = [int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0 for rng in server.hits(path)]
    return [HALF if 0 < start <= HALF else start for start in starts]


def fetch(server: Server, path: str, tmp_path: Path, **options) -> Path:
    return download(server.url + path, tmp_path / "cache", "toy", **{**FAST, **options})


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_download_is_cached_and_checked(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply()
    path = fetch(server, "/toy.csv", tmp_path, sha256=SHA256)
    assert path.read_bytes() == BODY
    assert path == cache_path(server.url + "/toy.csv", tmp_path / "cache")
    again = fetch(server, "/toy.csv", tmp_path)
    assert again == path and len(server.hits("/toy.csv")) == 1  # the second call uses the cache
    assert leftovers(tmp_path) == ["toy.csv"]


def test_broken_transfer_resumes_with_range(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(stop=HALF if n == 1 else None)
    path = fetch(server, "/toy.csv", tmp_path)
    assert path.read_bytes() == BODY
    assert resumed_from(server, "/toy.csv") == [0, HALF]


def test_broken_transfer_restarts_where_the_server_cannot_resume(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(stop=HALF if n == 1 else None, ranges=False)
    path = fetch(server, "/toy.csv", tmp_path)
    assert path.read_bytes() == BODY  # the full response replaced the partial file
    assert len(server.hits("/toy.csv")) == 2


def test_slow_server_still_succeeds(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(pause=0.01)  # every block well within the read timeout
    assert fetch(server, "/toy.csv", tmp_path).read_bytes() == BODY
    assert len(server.hits("/toy.csv")) == 1


def test_stalled_transfer_times_out_and_resumes(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(stop=HALF, stall=2.0) if n == 1 else Reply()
    path = fetch(server, "/toy.csv", tmp_path, read_timeout=0.3)
    assert path.read_bytes() == BODY
    assert resumed_from(server, "/toy.csv") == [0, HALF]


def test_transient_http_error_is_retried(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(status=503 if n == 1 else 200)
    assert fetch(server, "/toy.csv", tmp_path).read_bytes() == BODY


def test_download_failing_half_way_leaves_no_complete_looking_file(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply(stop=HALF, ranges=False)
    with pytest.raises(EmbaugError) as info:
        fetch(server, "/toy.csv", tmp_path)
    message = str(info.value)
    assert "dataset 'toy'" in message and "after 3 attempts" in message
    assert "datasets.toy.source: /path/to/toy.csv" in message
    assert len(server.hits("/toy.csv")) == 3
    assert leftovers(tmp_path) == ["toy.csv.part"]  # resumable, but not mistaken for the file


def test_wrong_checksum_deletes_the_download(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply()
    with pytest.raises(EmbaugError) as info:
        fetch(server, "/toy.csv", tmp_path, sha256="0" * 64)
    message = str(info.value)
    assert "dataset 'toy'" in message and "datasets.toy.sha256" in message
    assert SHA256 in message
    assert leftovers(tmp_path) == []


def test_cached_file_with_a_changed_checksum_is_fetched_again(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply()
    path = fetch(server, "/toy.csv", tmp_path)
    path.write_bytes(b"tampered")
    assert fetch(server, "/toy.csv", tmp_path, sha256=SHA256).read_bytes() == BODY
    assert len(server.hits("/toy.csv")) == 2


def test_git_blob_is_checked_like_sha256(server, tmp_path):
    """A file of a pinned Git commit is checked against its blob id in that commit's tree."""
    import subprocess

    server.routes["/toy.csv"] = lambda n: Reply()
    (tmp_path / "body").write_bytes(BODY)
    blob = subprocess.run(
        ["git", "hash-object", str(tmp_path / "body")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert file_git_blob(tmp_path / "body") == blob
    assert fetch(server, "/toy.csv", tmp_path / "ok", git_blob=blob).read_bytes() == BODY
    with pytest.raises(EmbaugError) as info:
        fetch(server, "/toy.csv", tmp_path / "bad", git_blob="0" * 40)
    assert f"has Git blob id {blob}" in str(info.value) and "datasets.toy.git_blob" in str(info.value)
    assert leftovers(tmp_path / "bad") == []


def test_file_sha256_reads_in_chunks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(BODY * 5)
    assert file_sha256(path) == hashlib.sha256(BODY * 5).hexdigest()


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(EmbaugError, match=r"HTTP 404.*datasets\.toy\.source"):
        fetch(server, "/missing.csv", tmp_path)
    assert len(server.hits("/missing.csv")) == 1


def test_unreachable_url_fails_fast_with_the_config_line(tmp_path):
    started = time.monotonic()
    with pytest.raises(EmbaugError) as info:
        download(CLOSED_PORT_URL, tmp_path / "cache", "iclr")
    assert time.monotonic() - started < 5  # no retries, no backoff
    message = str(info.value)
    assert "dataset 'iclr'" in message and "cannot connect" in message
    assert "datasets.iclr.source: /path/to/iclr24v2.parquet" in message
    assert not (tmp_path / "cache").exists() or leftovers(tmp_path) == []


def test_url_source_through_load_corpus_checks_the_configured_checksum(server, tmp_path):
    server.routes["/toy.csv"] = lambda n: Reply()
    spec = {"source": server.url + "/toy.csv", "sha256": SHA256, "subsample": {"n": 100, "seed": 0}}
    corpus = load_corpus("toy", spec, tmp_path / "cache")
    assert len(corpus) == 100 and corpus["label"].value_counts().to_dict() == {"a": 50, "b": 50}
    with pytest.raises(EmbaugError, match=r"datasets\.bad\.sha256"):
        load_corpus(
            "bad", {**spec, "source": server.url + "/toy.csv?v=2", "sha256": "f" * 64}, tmp_path / "c2"
        )


def test_cache_path_is_unique_per_url(tmp_path):
    first = cache_path("https://example.org/a/data.parquet", tmp_path)
    assert first == tmp_path / "downloads" / "example.org" / "a" / "data.parquet"
    other = cache_path("https://example.org/b/data.parquet", tmp_path)
    query = cache_path("https://example.org/a/data.parquet?rev=2", tmp_path)
    assert len({first, other, query}) == 3 and query.name.endswith("-data.parquet")
    assert cache_path("https://example.org/../../etc/passwd", tmp_path).is_relative_to(tmp_path / "downloads")


@pytest.fixture
def hub_unreachable(monkeypatch):
    """The hub client online but pointed at a closed port (as on a machine without network)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")


def test_hub_dataset_without_network_fails_fast(hub_unreachable, tmp_path):
    started = time.monotonic()
    with pytest.raises(EmbaugError) as info:
        load_corpus("arxiv", {"source": "mteb/arxiv-clustering-p2p"}, tmp_path)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "dataset 'arxiv'" in message and "mteb/arxiv-clustering-p2p" in message
    assert "cannot reach http://127.0.0.1:9" in message and "not in the local cache" in message
    assert "datasets.arxiv.source: /path/to/arxiv-clustering-p2p" in message


def test_hub_model_without_network_fails_fast(hub_unreachable):
    from embaug.models import load_encoder

    started = time.monotonic()
    with pytest.raises(EmbaugError) as info:
        load_encoder("no-such-owner-xyz/no-such-model-xyz", name="mpnet")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "model 'mpnet'" in message and "no-such-owner-xyz/no-such-model-xyz" in message
    assert "cannot reach" in message and "models.mpnet.source: /path/to/model_dir" in message


def test_local_model_directory_needs_no_network(hub_unreachable, tiny_model_dir):
    from embaug.models import load_encoder

    model, tokenizer = load_encoder(str(tiny_model_dir), name="tiny")
    assert model.config.hidden_size == 32 and tokenizer("a b")["input_ids"]


def test_pinned_hub_model_without_network_fails_fast_naming_the_revision(hub_unreachable, tmp_path):
    from embaug.models import download_hub_model

    with pytest.raises(EmbaugError) as info:
        download_hub_model("no-such-owner-xyz/model", "a" * 40, tmp_path / "hub", name="mpnet")
    message = str(info.value)
    assert "model 'mpnet'" in message and f"'no-such-owner-xyz/model' at revision {'a' * 40}" in message
    assert "not in the local cache" in message and not (tmp_path / "hub").exists()


@pytest.mark.parametrize(
    ("repo_files", "bin_too"), [(["model.safetensors"], False), (["pytorch_model.bin"], True)]
)
def test_pinned_hub_model_downloads_its_revision_into_the_cache_dir(
    monkeypatch, tmp_path, repo_files, bin_too
):
    import huggingface_hub

    from embaug import models

    calls = {}

    def snapshot_download(repo_id, **kwargs):
        calls.update(repo_id=repo_id, **kwargs)
        return str(tmp_path / "hub" / "snapshot")

    monkeypatch.setattr(models, "hub_unreachable", lambda: None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, revision: repo_files)
    folder = models.download_hub_model("org/model", "b" * 40, tmp_path / "hub")
    assert folder == tmp_path / "hub" / "snapshot"
    assert calls["repo_id"] == "org/model" and calls["revision"] == "b" * 40
    assert calls["cache_dir"] == tmp_path / "hub" and calls["local_files_only"] is False
    assert ("*.bin" in calls["allow_patterns"]) == bin_too and "*.safetensors" in calls["allow_patterns"]


def test_hub_dataset_revision_reaches_snapshot_download(monkeypatch, tmp_path):
    import huggingface_hub

    from embaug.data import sources

    folder = tmp_path / "snapshot"
    folder.mkdir()
    pd.DataFrame({"text": ["one text. two."], "label": ["a"]}).to_parquet(folder / "test.parquet")
    calls = {}

    def snapshot_download(repo_id, **kwargs):
        calls.update(repo_id=repo_id, **kwargs)
        return str(folder)

    monkeypatch.setattr(sources, "hub_unreachable", lambda: None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    spec = {"source": "mteb/arxiv-clustering-p2p", "revision": "c" * 40}
    corpus = load_corpus("arxiv", spec, tmp_path / "cache")
    assert corpus["text"].tolist() == ["one text. two."]
    assert calls["revision"] == "c" * 40 and calls["cache_dir"] == tmp_path / "cache" / "hub"


def test_url_download_without_checksum_logs_the_one_to_pin(server, tmp_path, caplog):
    server.routes["/toy.csv"] = lambda n: Reply()
    with caplog.at_level("INFO", logger="embaug.downloads"):
        fetch(server, "/toy.csv", tmp_path)
    assert f"has SHA-256 {SHA256} (set datasets.toy.sha256" in caplog.text
