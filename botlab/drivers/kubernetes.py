"""The new cluster's API through the official `kubernetes` client: server-side apply of
manifests under botlab's field manager, reads, and the few object calls the stages make. The
client is synchronous: each call runs in a worker thread within the call deadline; reads are
retried under the shared policy, changes are sent once.

The client is imported lazily, so `botlab --help` never pays for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from botlab.drivers.retry import Deadlines, RetryPolicy, answer_within, retry_call
from botlab.errors import StageError

log = logging.getLogger("botlab.kubernetes")
T = TypeVar("T")

FIELD_MANAGER = "botlab"
READS = RetryPolicy(attempts=5, initial=0.2, maximum=2.0, jitter=0.2)


def _transient(exc: Exception) -> bool:
    """Connection trouble and the API's own "try again" answers (429, 5xx)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504) or exc.status == 0
    return isinstance(exc, (HTTPError, ConnectionError, TimeoutError, OSError))


class KubeDriver:
    """One API client for the run, from the kubeconfig the kubernetes stage wrote."""

    def __init__(self, kubeconfig: Path, *, deadlines: Deadlines | None = None, reads: RetryPolicy = READS) -> None:
        from kubernetes import config

        self.kubeconfig = kubeconfig
        self.deadlines = deadlines or Deadlines()
        self._reads = reads if reads.within is not None else replace(reads, within=self.deadlines.unreachable)
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.server = self.api.configuration.host
        self._dynamic: Any = None  # made on first use, inside a call (it reads the API's discovery)

    @classmethod
    def connect(cls, kubeconfig: Path, environ: Mapping[str, str]) -> KubeDriver:
        if not kubeconfig.exists():
            raise StageError(f"no kubeconfig at {kubeconfig}", system="Kubernetes",
                             hint="run `botlab up kubernetes`: it fetches the kubeconfig from the control plane")
        return cls(kubeconfig, deadlines=Deadlines.from_environ(environ))

    async def close(self) -> None:
        self.api.close()

    # -- calls -----------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[[], T], *, read: bool) -> T:
        async def once() -> T:
            return await answer_within(self.deadlines.call, lambda: asyncio.to_thread(fn))

        if not read:
            try:
                return await once()
            except Exception as exc:
                raise self._error(what, exc) from None
        return await retry_call(self._reads, once, transient=_transient, log=log, what=what,
                                error=lambda exc: self._error(what, exc))

    def _error(self, what: str, exc: Exception) -> StageError:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException):
            import json

            try:
                message = json.loads(exc.body or "{}").get("message") or exc.reason
            except ValueError:
                message = exc.reason
            return StageError(f"{exc.status} {message}", system="Kubernetes", operation=what, where=self.server)
        return StageError(f"{type(exc).__name__}: {exc}", system="Kubernetes", operation=what, where=self.server,
                          hint="check that the cluster's API server answers (BOTLAB_CALL_TIMEOUT sets the deadline)")

    def _resource(self, api_version: str, kind: str) -> Any:
        if self._dynamic is None:
            from kubernetes import dynamic

            self._dynamic = dynamic.DynamicClient(self.api)
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply of one object under botlab's field manager; the object as stored."""
        meta = obj.get("metadata") or {}
        what = f"apply {obj.get('kind')} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}" \
               f"{meta.get('name')}"

        def work() -> dict[str, Any]:
            resource = self._resource(str(obj["apiVersion"]), str(obj["kind"]))
            done = resource.server_side_apply(body=dict(obj), name=meta.get("name"), namespace=meta.get("namespace"),
                                              field_manager=FIELD_MANAGER, force_conflicts=force)
            return dict(done.to_dict())

        return await self._call(what, work, read=False)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        from kubernetes.dynamic.exceptions import NotFoundError

        def work() -> dict[str, Any] | None:
            try:
                return dict(self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict())
            except NotFoundError:
                return None

        return await self._call(f"get {kind} {name}", work, read=True)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}

        def work() -> dict[str, Any]:
            resource = self._resource(str(obj["apiVersion"]), str(obj["kind"]))
            return dict(resource.create(body=dict(obj), namespace=meta.get("namespace")).to_dict())

        return await self._call(f"create {obj.get('kind')} {meta.get('name') or meta.get('generateName')}", work,
                                read=False)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object; False when it was already gone."""
        from kubernetes.dynamic.exceptions import NotFoundError

        def work() -> bool:
            try:
                self._resource(api_version, kind).delete(name=name, namespace=namespace)
            except NotFoundError:
                return False
            return True

        return await self._call(f"delete {kind} {name}", work, read=False)

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: Mapping[str, Any], *,
                    manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """A strategic-merge patch (the built-in kinds') under field manager `manager`."""
        def work() -> dict[str, Any]:
            resource = self._resource(api_version, kind)
            return dict(resource.patch(name=name, namespace=namespace, body=dict(body), field_manager=manager,
                                       content_type="application/strategic-merge-patch+json").to_dict())

        return await self._call(f"patch {kind} {name}", work, read=False)

    async def label_node(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        """Merge-patch the Node's labels (None removes one)."""
        def work() -> dict[str, Any]:
            resource = self._resource("v1", "Node")
            return dict(resource.patch(name=name, body={"metadata": {"labels": dict(labels)}},
                                       content_type="application/merge-patch+json").to_dict())

        return await self._call(f"label node {name}", work, read=False)

