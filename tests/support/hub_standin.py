"""A local stand-in for the Hugging Face Hub endpoints that vetting, search and fetch call.

huggingface_hub is pointed at it with `endpoint=` (or `HF_ENDPOINT`), so the
real client code runs: `model_info(files_metadata=True)`, `list_models`,
`list_repo_tree`, and HEAD/GET on `/{repo}/resolve/{revision}/{file}` with the
headers `hf_hub_download` needs (ETag, X-Repo-Commit, Content-Length). Gated,
private and missing repos answer with the status codes and `X-Error-Code`
headers the Hub uses. Every request is recorded, so tests can count calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def safetensors_bytes(shapes: Mapping[str, tuple[int, ...]], *, padding: int = 0) -> bytes:
    """A valid safetensors file of float32 zeros; `padding` adds bytes to make a file large."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * (offset + padding)


def config_bytes(architecture: str, model_type: str = "bert", **extra: Any) -> bytes:
    return json.dumps({"architectures": [architecture], "model_type": model_type, **extra}).encode()


@dataclass
class StandInRepo:
    """One model repo: its files and the metadata the Hub computes from them."""

    repo_id: str
    files: dict[str, bytes]
    pipeline_tag: str | None = None
    gated: bool = False
    private: bool = False
    downloads: int = 0
    likes: int = 0
    num_parameters: int | None = None

    def config(self) -> dict[str, Any]:
        raw = self.files.get("config.json")
        if raw is None:
            return {}
        config = json.loads(raw)
        keys = ("architectures", "model_type", "auto_map")
        return {key: config[key] for key in keys if key in config}

    def sibling(self, name: str) -> dict[str, Any]:
        data = self.files[name]
        entry: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": _git_oid(data)}
        if name.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
        return entry

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": COMMIT,
            "private": self.private,
            "gated": "manual" if self.gated else False,
            "downloads": self.downloads,
            "likes": self.likes,
            "pipeline_tag": self.pipeline_tag,
            "tags": [],
            "config": self.config(),
            "siblings": [self.sibling(name) for name in sorted(self.files)],
        }
        if self.num_parameters is not None:
            body["safetensors"] = {
                "parameters": {"F32": self.num_parameters},
                "total": self.num_parameters,
            }
        return body

    def tree(self) -> list[dict[str, Any]]:
        entries = []
        for name in sorted(self.files):
            sibling = self.sibling(name)
            entry = {
                "type": "file",
                "path": name,
                "size": sibling["size"],
                "oid": sibling["blobId"],
            }
            if "lfs" in sibling:
                entry["lfs"] = {
                    "oid": sibling["lfs"]["sha256"],
                    "size": sibling["size"],
                    "pointerSize": 134,
                }
            entries.append(entry)
        return entries


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubStandIn:
    """The repos served and the requests seen; `down` answers 503 to everything, like an
    outage; `url` is set once the server runs."""

    repos: dict[str, StandInRepo] = field(default_factory=dict)
    tokens_with_access: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    down: bool = False
    url: str = ""

    def add(self, repo_id: str, files: Mapping[str, bytes], **metadata: Any) -> StandInRepo:
        repo = StandInRepo(repo_id, dict(files), **metadata)
        self.repos[repo_id] = repo
        return repo

    def count(self, path_part: str, method: str | None = None) -> int:
        return sum(
            1
            for seen_method, path in self.requests
            if path_part in path and (method is None or seen_method == method)
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/models", self._list_models)
        app.router.add_get("/api/models/{rest:.+}", self._api_model)
        app.router.add_route("*", "/{rest:.+}/resolve/{revision}/{filename:.+}", self._resolve)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.down:
            return web.Response(status=503, text="Service unavailable")
        try:
            return await handler(request)
        except _HubError as error:
            return error.response()

    def _token(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    def _find(self, request: web.Request, repo_id: str) -> StandInRepo:
        """The Hub answers 401 RepoNotFound for a private repo without a valid token, like a
        missing one, so a client cannot tell them apart."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and self._token(request) not in self.tokens_with_access):
            status = 401 if self._token(request) is None else 404
            raise _HubError(status, "RepoNotFound", "Repository not found")
        return repo

    async def _api_model(self, request: web.Request) -> web.Response:
        rest = request.match_info["rest"]
        if "/tree/" in rest:
            repo_id = rest.split("/tree/", 1)[0]
            return web.json_response(self._find(request, repo_id).tree())
        repo_id = rest.split("/revision/", 1)[0]
        return web.json_response(self._find(request, repo_id).info())

    async def _list_models(self, request: web.Request) -> web.Response:
        tag = request.query.get("pipeline_tag")
        search = request.query.get("search", "").lower()
        limit = int(request.query.get("limit", "1000"))
        found = [
            repo
            for repo in self.repos.values()
            if not repo.private
            and (tag is None or repo.pipeline_tag == tag)
            and search in repo.repo_id.lower()
        ]
        found.sort(key=lambda repo: repo.downloads, reverse=True)
        body = [
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "downloads": repo.downloads,
                "likes": repo.likes,
                "pipeline_tag": repo.pipeline_tag,
                "private": repo.private,
                "tags": [],
            }
            for repo in found[:limit]
        ]
        return web.json_response(body)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo = self._find(request, request.match_info["rest"])
        if repo.gated and self._token(request) not in self.tokens_with_access:
            status = 401 if self._token(request) is None else 403
            raise _HubError(status, "GatedRepo", "Access to model is restricted")
        name = request.match_info["filename"]
        if name not in repo.files:
            raise _HubError(404, "EntryNotFound", "Entry not found")
        data = repo.files[name]
        sibling = repo.sibling(name)
        etag = sibling["lfs"]["sha256"] if "lfs" in sibling else sibling["blobId"]
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": COMMIT, "Content-Length": str(len(data))}
        if "lfs" in sibling:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        if request.method == "HEAD":
            return web.Response(headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        chunk = 64 * 1024
        for start in range(0, len(data), chunk):
            await response.write(data[start : start + chunk])
        await response.write_eof()
        return response


class _HubError(Exception):
    """A refusal the way the Hub words it: a status and `X-Error-Code` / `X-Error-Message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        headers = {"X-Error-Code": self.code, "X-Error-Message": self.message}
        return web.Response(status=self.status, headers=headers, text=self.message)


@asynccontextmanager
async def serve(standin: HubStandIn) -> AsyncIterator[HubStandIn]:
    """Run the stand-in on 127.0.0.1 (a free port) for the duration of the block."""
    server = TestServer(standin.app(), host="127.0.0.1")
    await server.start_server()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        await server.close()


@contextmanager
def serve_in_thread(standin: HubStandIn) -> Iterator[HubStandIn]:
    """Run the stand-in on its own event loop, for code under test that calls asyncio.run."""

    async def start() -> TestServer:
        server = TestServer(standin.app(), host="127.0.0.1")
        await server.start_server()
        return server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start(), loop).result()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
