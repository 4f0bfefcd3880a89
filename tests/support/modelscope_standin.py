"""A local stand-in for the ModelScope routes the `modelscope` package calls to fetch a model.

The real client runs against it (`endpoint=` its URL): the file list
(`GET /api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=`, entries with
Path, Size, Sha256 as ModelScope sends them, wrapped in `{"Code", "Data": {"Files"},
"Success"}`) and the files (`GET /api/v1/models/{owner}/{name}/repo?Revision=&FilePath=`,
with byte ranges for resumed downloads). The region probe the client makes first
(`/api/v1/repos/internalAccelerationInfo`) answers 404, as it does outside Alibaba
Cloud. A missing repo or revision answers as ModelScope does: 404 with `Success: false`.
Every request is recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class ModelScopeStandIn:
    """Repos by id, each a map of revision to files; `down` answers 503 to everything."""

    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False
    url: str = ""

    def add(self, repo_id: str, files: Mapping[str, bytes], revision: str = "master") -> None:
        self.repos.setdefault(repo_id, {})[revision] = dict(files)

    def count(self, path_part: str) -> int:
        return sum(1 for _, path in self.requests if path_part in path)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/v1/models/{owner}/{name}/repo/files", self._files)
        app.router.add_get("/api/v1/models/{owner}/{name}/repo", self._file)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.down:
            return web.Response(status=503, text="Service unavailable")
        return await handler(request)

    def _revision(self, request: web.Request) -> dict[str, bytes] | None:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if repo is None:
            return None
        return repo.get(request.query.get("Revision", "master"))

    @staticmethod
    def _missing() -> web.Response:
        body = {"Code": 10010205001, "Message": "model not exist", "Success": False}
        return web.json_response(body, status=404)

    async def _files(self, request: web.Request) -> web.Response:
        files = self._revision(request)
        if files is None:
            return self._missing()
        entries = [
            {
                "Name": name.rsplit("/", 1)[-1],
                "Path": name,
                "Type": "blob",
                "Size": len(data),
                "Sha256": hashlib.sha256(data).hexdigest(),
                "IsLFS": name.endswith((".safetensors", ".bin")),
                "Revision": request.query.get("Revision", "master"),
            }
            for name, data in sorted(files.items())
        ]
        return web.json_response({"Code": 200, "Data": {"Files": entries}, "Success": True})

    async def _file(self, request: web.Request) -> web.Response:
        files = self._revision(request)
        name = request.query.get("FilePath", "")
        if files is None or name not in files:
            return self._missing()
        data = files[name]
        start = 0
        ranged = request.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start = int(ranged.removeprefix("bytes=").split("-", 1)[0] or 0)
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return web.Response(body=data[start:], status=206, headers=headers)
        return web.Response(body=data)


@asynccontextmanager
async def serve_modelscope(standin: ModelScopeStandIn) -> AsyncIterator[ModelScopeStandIn]:
    """Run the stand-in on 127.0.0.1 (a free port) for the duration of the block."""
    server = TestServer(standin.app(), host="127.0.0.1")
    await server.start_server()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        await server.close()
