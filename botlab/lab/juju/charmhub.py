"""A Charmhub emulator: the parts of Charmhub's v2 API that clients ask directly, served from
the lab's charm catalogue (catalogue.py).

libjuju 3.6.1.3 asks Charmhub itself (not the controller) on some paths: `model.deploy("etcd")`
checks `GET <charmhub-url>/v2/charms/info/etcd?fields=default-release.revision.subordinate`,
`model.charmhub.info()` reads the channel map, `application.refresh()` the resources. It takes
the address from the model's `charmhub-url` config, so a lab model made with
`add_model(..., config={"charmhub-url": charmhub.url})` (Juju allows it at creation) sends
them here:

    with run_charmhub() as charmhub:
        model = await controller.add_model("lab", config={"charmhub-url": charmhub.url})

Served: `GET /v2/charms/info/<name>` (id, name, type, default-release with revision, bases,
subordinate and resources, channel-map, result with summary/description/publisher; `channel=`
picks the release) and `GET /v2/charms/find?q=`; an unknown name is a 404 with Charmhub's
`error-list`. Every request is logged (`requests`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from botlab.lab.juju import catalogue
from botlab.lab.juju.appstate import base_api
from botlab.lab.juju.catalogue import Charm
from botlab.lab.thread import AppThread, StartStop

RELEASED_AT = "2025-01-15T12:00:00.000000+00:00"  # lab value
DEFAULT_CHANNEL = "latest/stable"


def _platforms(charm: Charm) -> list[dict[str, str]]:
    return [{**base_api(b), "architecture": "amd64"} for b in charm.bases]


def _revision(charm: Charm, revision: int) -> dict[str, Any]:
    return {
        "revision": revision,
        "version": str(revision),
        "created-at": RELEASED_AT,
        "bases": _platforms(charm),
        "subordinate": charm.subordinate,
        "download": {"url": f"https://api.charmhub.io/api/v1/charms/download/{charm.id}_{revision}.charm",
                     "size": 0, "hash-sha-256": ""},
    }


def _resources(charm: Charm) -> list[dict[str, Any]]:
    return [{"name": r.name, "type": r.type, "filename": r.filename, "description": r.description,
             "revision": r.revision, "download": {"url": "", "size": 0, "hash-sha-384": ""}}
            for r in charm.resources.values()]


def _channel(charm: Charm, name: str) -> dict[str, Any]:
    track, risk = catalogue.parse_channel(name)
    return {"name": f"{track}/{risk}", "track": track, "risk": risk, "released-at": RELEASED_AT,
            "base": {**base_api(charm.bases[-1]), "architecture": "amd64"}}


def charm_info(charm: Charm, channel: str | None = None) -> dict[str, Any]:
    """Charmhub's /v2/charms/info answer for `charm` (every field, whatever `fields` asks)."""
    wanted = channel or (DEFAULT_CHANNEL if DEFAULT_CHANNEL in charm.channels else next(iter(charm.channels)))
    name, revision = charm.resolve(wanted)
    return {
        "id": charm.id,
        "name": charm.name,
        "type": "charm",
        "default-release": {"channel": _channel(charm, name), "revision": _revision(charm, revision),
                            "resources": _resources(charm)},
        "channel-map": [{"channel": _channel(charm, ch), "revision": _revision(charm, rev)}
                        for ch, rev in charm.channels.items()],
        "result": {
            "summary": charm.summary,
            "description": charm.description,
            "publisher": {"display-name": charm.publisher},
            "store-url": f"https://charmhub.io/{charm.name}",
            "website": charm.source,
        },
    }


class CharmhubEmulator(StartStop):
    """Charmhub's v2 info/find API for the lab's catalogue, on 127.0.0.1 from a thread."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        app = web.Application()
        app.add_routes([web.get("/v2/charms/info/{name}", self._info), web.get("/v2/charms/find", self._find)])
        self._thread = AppThread(app, port=port, name="charmhub-emulator")

    @property
    def url(self) -> str:
        return self._thread.url

    def start(self) -> str:
        return self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def requests(self) -> list[dict[str, Any]]:
        """What clients asked: method, path, query."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def _log(self, request: web.Request) -> None:
        with self._lock:
            self._requests.append({"method": request.method, "path": request.path, "query": dict(request.query)})

    async def _info(self, request: web.Request) -> web.Response:
        self._log(request)
        name = request.match_info["name"]
        charm = catalogue.find_charm(name)
        if charm is None:
            return _not_found(f"No charm or bundle with name '{name}'.")
        channel = request.query.get("channel") or None
        try:
            return web.json_response(charm_info(charm, channel))
        except KeyError:
            return _not_found(f"No releases available for channel '{channel}' of '{name}'.")

    async def _find(self, request: web.Request) -> web.Response:
        self._log(request)
        query = request.query.get("q", "")
        found = [charm_info(c) for n, c in sorted(catalogue.CATALOGUE.items()) if query in n]
        return web.json_response({"results": found})


def _not_found(message: str) -> web.Response:
    return web.json_response({"error-list": [{"code": "not-found", "message": message}]}, status=404)


@contextmanager
def run_charmhub(port: int = 0) -> Iterator[CharmhubEmulator]:
    """Serve a Charmhub emulator for the `with` block."""
    with CharmhubEmulator(port) as emulator:
        yield emulator
