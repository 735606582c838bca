"""The emulated Kubernetes API server: HTTPS, bearer-token authentication, discovery, and the
REST verbs on every resource of the catalogue (built-ins and CRDs).

Paths, verbs and answers follow kube-apiserver 1.31 (kubernetes/kubernetes, tag v1.31.x):
request routing as staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go parses
it, handlers as endpoints/handlers/{get,create,update,delete,patch,watch}.go answer, content
negotiation as endpoints/handlers/negotiation and the Table / PartialObjectMetadata
transforms of endpoints/handlers/response.go. docs/lab-k8s.md says what is served and what
is not.

PATCH, server-side apply and schema validation live in sibling modules (patching, apply,
validation), imported when first needed: PATCH answers 500 "not implemented in the lab
yet" while its module is missing; validation is skipped while its module is missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hmac
import ipaddress
import json
import logging
import secrets
import ssl
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from botlab.lab.juju.tls import ControllerCerts
from botlab.lab.k8s import errors, resources, validation, webhooks
from botlab.lab.k8s.apply import ApplyConflict, ApplyError, default_manager, server_side_apply, update_managed_fields
from botlab.lab.k8s.controllers import Controllers, admission
from botlab.lab.k8s.patching import PatchError, apply_patch
from botlab.lab.k8s.resources import Catalogue, ResourceType
from botlab.lab.k8s.store import DeleteOptions, Store
from botlab.lab.thread import ServerThread, Site

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_VERSION = "1.31.4"
JSON = "application/json"
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
BODY_TYPES = [JSON, "application/yaml", "application/vnd.kubernetes.protobuf"]
# The names a real API server certificate carries (kubeadm / Charmed Kubernetes alike).
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                 "localhost")


# --- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class K8sCerts:
    """PEM text of the cluster CA (certificate and key) and of the API server's certificate."""

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str

    def server_context(self) -> ssl.SSLContext:
        return ControllerCerts(self.ca_cert, self.server_cert, self.server_key).server_context()

    def client_context(self) -> ssl.SSLContext:
        """What kubectl builds from certificate-authority-data: this CA, host names checked."""
        return ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=self.ca_cert)


def make_certs(addresses: list[str], *, ca_cert: str | None = None, ca_key: str | None = None,
               valid_days: int = 3650) -> K8sCerts:
    """A server certificate for `addresses` (IPs or DNS names, plus loopback and the in-cluster
    service names), signed by the given CA or by a fresh one (ECDSA P-256)."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=valid_days)
    pem = serialization.Encoding.PEM
    if ca_cert is None or ca_key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-ca")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        ca_cert = cert.public_bytes(pem).decode()
        ca_key = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    signer = serialization.load_pem_private_key(ca_key.encode(), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the cluster CA key must be an ECDSA or RSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for address in [*addresses, "127.0.0.1", *SERVICE_NAMES]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(address))
        except ValueError:
            entry = x509.DNSName(address)
        if entry not in names:
            names.append(entry)
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return K8sCerts(
        ca_cert=ca_cert, ca_key=ca_key, server_cert=server.public_bytes(pem).decode(),
        server_key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    )


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a resource path names (requestinfo.go): a resource, maybe a namespace, a name,
    a subresource; `watch_path` for the deprecated /watch/ prefix."""

    type: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def _media_types(header: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts[0]:
            continue
        params = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip()
        out.append((parts[0].lower(), params))
    return out


def _accepts(request: web.Request, as_kind: str, group: str = "meta.k8s.io") -> str | None:
    """The version (v1, v1beta1, v2...) of `as_kind` the Accept header asks for, if any is
    asked before plain JSON."""
    for media, params in _media_types(request.headers.get("Accept", "")):
        if media not in (JSON, "*/*", "application/*") and not media.startswith("application/json"):
            continue
        if params.get("as") == as_kind and params.get("g") == group:
            return params.get("v")
        if "as" not in params:
            return None
    return None


def _content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _response(obj: Any, status: int = 200, content_type: str = JSON) -> web.Response:
    return web.Response(body=json.dumps(obj).encode() + b"\n", status=status, headers={"Content-Type": content_type})


def _truthy(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _internal_package(group: str) -> str:
    """The internal API package a built-in kind converts to ("core", "apps", "rbac", ...)."""
    return group.split(".")[0] if group else "core"


class K8sApiServer:
    """A Kubernetes API server over HTTPS on `host`:`port` (0: an ephemeral port), answering
    requests that carry `token` as a bearer token.

    `start()`/`stop()` serve it on the running event loop; `run_k8s` serves it from a
    thread for synchronous clients (the official Python client, kubectl).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, *,
                 certs: K8sCerts | None = None, kubernetes_version: str = DEFAULT_VERSION,
                 store: Store | None = None, controllers: Callable[[Store], Controllers] | None = None) -> None:
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(24)
        self.certs = certs or make_certs([host])
        self.kubernetes_version = kubernetes_version.lstrip("v")
        self.store = store or Store(Catalogue())
        if self.store.validate is None:
            self.store.validate = _validation_hook(self.store)
        if self.store.admit is None:
            self.store.admit = admission(self.store)  # the pod admission plugins (controllers/admission.py)
        webhooks.of(self.store)  # dynamic admission: the webhook configurations (webhooks.py)
        # The cluster's controllers (botlab.lab.k8s.controllers), when asked for: `controllers`
        # makes them for the store (e.g. controllers.with_controllers(gpus_of=...)); they run on
        # the serving loop from the application's start to its cleanup.
        self.controllers = controllers(self.store) if controllers is not None else None
        self._controllers_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.thread: ServerThread | None = None  # set by run_k8s

    # --- serving --------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        return self.store.catalogue

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self.handle)
        if self.controllers is not None:
            app.on_startup.append(self._start_controllers)
            app.on_cleanup.append(self._stop_controllers)
        return app

    async def _start_controllers(self, _app: web.Application) -> None:
        if self.controllers is not None and self._controllers_task is None:
            self._controllers_task = asyncio.get_running_loop().create_task(self.controllers.run(),
                                                                            name="k8s-controllers")

    async def _stop_controllers(self, _app: web.Application) -> None:
        task, self._controllers_task = self._controllers_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def ssl_context(self) -> ssl.SSLContext:
        return self.certs.server_context()

    async def start(self) -> str:
        """Serve on the running loop; returns `url` (the port resolved)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context())
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        """End every watch and stop serving. Safe to call twice."""
        await self.close_watches()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def close_watches(self) -> None:
        self.store.close_watches()

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` where the store lives: on the serving thread's loop under `run_k8s`,
        directly otherwise."""
        return self.thread.call_function(fn) if self.thread is not None else fn()

    # --- kubeconfig -----------------------------------------------------------------------

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for this server, shaped as kubernetes-control-plane's get-kubeconfig
        action (botlab/lab/juju/actions.py get_kubeconfig) makes it."""
        ca_data = base64.b64encode(self.certs.ca_cert.encode()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "juju-cluster",
                          "cluster": {"server": self.url, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": "juju-context", "context": {"cluster": "juju-cluster", "user": "admin"}}],
            "current-context": "juju-context",
            "users": [{"name": "admin", "user": {"token": self.token}}],
        }

    def write_kubeconfig(self, path: Path) -> Path:
        """Write `kubeconfig()` to `path` (mode 0600: it holds the token)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return path

    # --- dispatch -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        _FIELD_VALIDATION.set(request.query.get("fieldValidation") or "Warn")
        warnings: list[str] = []
        _WARNINGS.set(warnings)
        try:
            self._authenticate(request)
            response = await self._route(request)
        except errors.ApiError as exc:
            response = _response(exc.status, exc.code)
        except Exception as exc:  # a lab bug: answered loudly, as the apiserver's panic handler would
            log.exception("the lab's Kubernetes API server failed on %s %s", request.method, request.path)
            error = errors.internal(f"{type(exc).__name__}: {exc}")
            response = _response(error.status, error.code)
        if warnings and not response.prepared:
            # apiserver/pkg/warning: `299 - "<text>"`, one header each.
            for text in warnings:
                escaped = text.replace("\\", "\\\\").replace('"', '\\"')
                response.headers.add("Warning", f'299 - "{escaped}"')
        return response

    def _authenticate(self, request: web.Request) -> None:
        """The bearer token authenticator: anything but `Authorization: Bearer <token>` is 401
        (anonymous requests are refused, as with --anonymous-auth=false)."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise errors.unauthorized()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if request.method == "GET":
            fixed = self._fixed_get(request, path)
            if fixed is not None:
                return fixed
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.path_not_found(restful=False)
        restful = self.catalogue.is_builtin_group_version(group, version)
        if not self.catalogue.in_group_version(group, version):
            raise errors.path_not_found(restful=False)
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed()
            doc = resources.api_resource_list(self.catalogue, group, version)
            assert doc is not None
            return _response(doc)
        target = self._target(group, version, rest, restful)
        return await self._serve(request, target, restful)

    def _fixed_get(self, request: web.Request, path: str) -> web.StreamResponse | None:
        path = path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _response(self._version())
        if path in ("/api", "/apis"):
            if _accepts(request, "APIGroupDiscoveryList", "apidiscovery.k8s.io") == "v2":
                return _response(resources.aggregated_discovery(self.catalogue, core=path == "/api"),
                                 content_type=AGGREGATED_V2)
            if path == "/api":
                return _response(resources.api_versions(f"{self.host}:{self.port}"))
            return _response(resources.api_group_list(self.catalogue))
        if path.startswith("/apis/") and path.count("/") == 2:
            group_doc = resources.api_group(self.catalogue, path.split("/")[2])
            if group_doc is None:
                raise errors.path_not_found(restful=False)
            return _response(group_doc)
        if path == "/openapi/v3":
            return _response(resources.openapi_v3_root(self.catalogue))
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/"):].split("/")
            doc = None
            if rest[:2] == ["api", "v1"] and len(rest) == 2:
                doc = resources.openapi_v3_document(self.catalogue, "", "v1")
            elif rest[0] == "apis" and len(rest) == 3:
                doc = resources.openapi_v3_document(self.catalogue, rest[1], rest[2])
            if doc is None:
                raise errors.path_not_found(restful=False)
            return _response(doc)
        return None

    def _version(self) -> dict[str, str]:
        """GET /version: version.Info (component-base/version)."""
        major, minor, *_ = self.kubernetes_version.split(".")
        return {
            "major": major, "minor": minor, "gitVersion": f"v{self.kubernetes_version}",
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-12-10T00:00:00Z",
            "goVersion": "go1.22.9", "compiler": "gc", "platform": "linux/amd64",
        }

    def _target(self, group: str, version: str, rest: list[str], restful: bool) -> Target:
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace = None
        # /namespaces/<ns>/<resource>... unless what follows the name is a namespace
        # subresource (status, finalize): requestinfo.go namespaceSubresources.
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.path_not_found(restful=restful)
        t = self.catalogue.lookup(group, version, rest[0])
        if t is None or (namespace is not None and not t.namespaced):
            raise errors.path_not_found(restful=restful)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if t.namespaced and namespace is None and name is not None:
            raise errors.path_not_found(restful=restful)
        if sub is not None and t.subresource(sub) is None:
            raise errors.path_not_found(restful=restful)
        return Target(t, namespace, name, sub, watch_path)

    async def _serve(self, request: web.Request, target: Target, restful: bool) -> web.StreamResponse:
        t, method = target.type, request.method
        verbs = set(t.verbs)
        if target.subresource is not None:
            sub = t.subresource(target.subresource)
            assert sub is not None
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
            if verb not in sub.verbs:
                raise errors.method_not_allowed()
            if target.subresource == "finalize" and t.key == ("", "namespaces"):
                body = await self._body(request, t)
                return _response(self.store.finalize_namespace(target.name or "", body))
            if target.subresource != "status":
                raise errors.not_implemented(f"{method} {request.path} (the {target.subresource} subresource)")
            if verb == "get":
                return await self._get(request, target)
            if verb == "update":
                return await self._update(request, target)
            return await self._patch(request, target)
        if target.name is None:
            if method == "GET":
                if target.watch_path or _truthy(request.query.get("watch")):
                    self._require(verbs, "watch")
                    return await self._watch(request, target)
                self._require(verbs, "list")
                return await self._list(request, target)
            if method == "POST" and (target.namespace is not None or not t.namespaced):
                self._require(verbs, "create")
                return await self._create(request, target)
            if method == "DELETE" and (target.namespace is not None or not t.namespaced):
                self._require(verbs, "deletecollection")
                return await self._delete_collection(request, target)
            raise errors.method_not_allowed()
        if method == "GET":
            if target.watch_path or _truthy(request.query.get("watch")):
                self._require(verbs, "watch")
                return await self._watch(request, target)
            self._require(verbs, "get")
            return await self._get(request, target)
        if method == "PUT":
            self._require(verbs, "update")
            return await self._update(request, target)
        if method == "PATCH":
            self._require(verbs, "patch")
            return await self._patch(request, target)
        if method == "DELETE":
            self._require(verbs, "delete")
            return await self._delete(request, target)
        raise errors.method_not_allowed()

    @staticmethod
    def _require(verbs: set[str], verb: str) -> None:
        if verb not in verbs:
            raise errors.method_not_allowed()

    # --- bodies ---------------------------------------------------------------------------

    async def _body(self, request: web.Request, t: ResourceType) -> dict[str, Any]:
        """A create or update body: JSON or YAML, an object of `t`'s kind and version."""
        media = _content_type(request) or JSON
        raw = await request.read()
        if media in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                data = yaml.safe_load(raw.decode() or "{}")
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None
        elif media == JSON or media.endswith("+json"):
            try:
                data = json.loads(raw.decode() or "{}")
            except (ValueError, UnicodeDecodeError) as exc:
                raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        elif media == "application/vnd.kubernetes.protobuf":
            raise errors.not_implemented("protobuf request bodies")
        else:
            raise errors.unsupported_media_type(BODY_TYPES)
        if not isinstance(data, dict):
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {t.kind})")
        self._check_type(data, t)
        return data

    @staticmethod
    def _check_type(data: dict[str, Any], t: ResourceType) -> None:
        """handlers/create.go and update.go: the body's group version must be the endpoint's,
        its kind one the endpoint handles (the decoder fills in what is left out)."""
        api_version, kind = data.get("apiVersion") or t.group_version, data.get("kind") or t.kind
        group, _, version = str(api_version).rpartition("/")
        if api_version != t.group_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                                     f"version ({t.group_version})")
        if kind != t.kind:
            pkg = _internal_package(group)
            raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {t.kind}: converting '
                                     f"({version}.{kind}) to ({pkg}.{t.kind}): unknown conversion")
        data["apiVersion"], data["kind"] = t.group_version, t.kind

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise errors.invalid("CreateOptions", "meta.k8s.io", "", [errors.field_error(
                    "Unsupported value", "dryRun", 'supported values: "All"', [value])])
        return bool(values)

    # --- verbs ----------------------------------------------------------------------------

    def _render(self, request: web.Request, t: ResourceType, obj: dict[str, Any], status: int = 200) -> web.Response:
        table_version = _accepts(request, "Table")
        if table_version in ("v1", "v1beta1"):
            return _response(resources.table(
                t, [obj], self.store.clock(), api_version=f"meta.k8s.io/{table_version}",
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"].get("resourceVersion", "")), status)
        pom_version = _accepts(request, "PartialObjectMetadata")
        if pom_version in ("v1", "v1beta1"):
            return _response({"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{pom_version}",
                              "metadata": obj.get("metadata") or {}}, status)
        return _response(obj, status)

    async def _get(self, request: web.Request, target: Target) -> web.Response:
        obj = self.store.get(target.type, target.namespace, target.name or "")
        return self._render(request, target.type, obj)

    async def _list(self, request: web.Request, target: Target) -> web.Response:
        t, q = target.type, request.query
        items, rv = self.store.list_objects(t, target.namespace, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        meta: dict[str, Any] = {"resourceVersion": rv}
        items, meta = self._page(items, meta, q.get("limit"), q.get("continue"))
        table_version = _accepts(request, "Table")
        if table_version in ("v1", "v1beta1"):
            doc = resources.table(t, items, self.store.clock(), api_version=f"meta.k8s.io/{table_version}",
                                  include_object=q.get("includeObject", "Metadata"), resource_version=rv)
            doc["metadata"] = meta
            return _response(doc)
        pom_version = _accepts(request, "PartialObjectMetadataList")
        if pom_version in ("v1", "v1beta1"):
            return _response({"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{pom_version}",
                              "metadata": meta, "items": [
                                  {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{pom_version}",
                                   "metadata": i["metadata"]} for i in items]})
        if t.crd is None:
            # A built-in typed list carries no apiVersion/kind in its items.
            items = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in items]
        return _response({"kind": t.list_kind, "apiVersion": t.group_version, "metadata": meta, "items": items})

    @staticmethod
    def _page(items: list[dict[str, Any]], meta: dict[str, Any], limit: str | None,
              token: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """limit/continue: the continue token names the last key returned (its consistent
        snapshot is not kept: later pages see current data)."""
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request(f"continue key is not valid: {token}") from None
            items = [i for i in items if _item_key(i) > start]
        try:
            count = int(limit) if limit else 0
        except ValueError:
            raise errors.bad_request(f"invalid limit: {limit}") from None
        if count > 0 and len(items) > count:
            last = _item_key(items[count - 1])
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": int(
                meta["resourceVersion"]), "start": last}).encode()).decode()
            meta["remainingItemCount"] = len(items) - count
            items = items[:count]
        return items, meta

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        t = target.type
        body = await self._body(request, t)
        if self.store.terminating_crd(t):
            error = errors.method_not_supported(t.plural, t.group, "create")
            error.status["message"] = "create not allowed while custom resource definition is terminating"
            raise error
        body = self._managed(request, None, body)
        obj = self.store.create(t, target.namespace, body, dry_run=self._dry_run(request))
        return self._render(request, t, obj, 201)

    def _managed(self, request: web.Request, live: dict[str, Any] | None, new: dict[str, Any], *,
                 subresource: str = "") -> dict[str, Any]:
        """`new` with managedFields for a non-apply write: the fields it changed belong to the
        request's field manager (fieldManager, else the User-Agent's product, as
        staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go derives it), operation Update."""
        manager = request.query.get("fieldManager") or default_manager(request.headers.get("User-Agent", ""))
        return update_managed_fields(live, new, manager, self.store.now(), subresource=subresource)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        t = target.type
        body = await self._body(request, t)
        body = self._managed(request, self.store.find(t, target.namespace, target.name or ""), body,
                             subresource=target.subresource or "")
        obj, created = self.store.update(t, target.namespace, target.name or "", body,
                                         subresource=target.subresource or "", dry_run=self._dry_run(request))
        return self._render(request, t, obj, 201 if created else 200)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        t = target.type
        options = await self._delete_options(request)
        obj, immediate = self.store.delete(t, target.namespace, target.name or "", options)
        if immediate and not t.return_deleted:
            # registry/generic/registry/store.go finalizeDelete: a Status naming what went.
            details = {"name": obj["metadata"]["name"], "group": t.group, "kind": t.plural,
                       "uid": obj["metadata"].get("uid", "")}
            return _response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {k: v for k, v in details.items() if v}})
        code = 202 if not immediate and options.orphan_dependents is False else 200
        return self._render(request, t, obj, code)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        q = request.query
        body: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            try:
                loaded = json.loads(raw)
            except ValueError as exc:
                raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
            if isinstance(loaded, dict):
                body = loaded
        pre = body.get("preconditions") or {}
        dry = bool(body.get("dryRun")) or self._dry_run(request)
        orphan = body.get("orphanDependents")
        if q.get("orphanDependents") is not None:
            orphan = _truthy(q.get("orphanDependents"))
        return DeleteOptions(propagation=q.get("propagationPolicy") or body.get("propagationPolicy"),
                             orphan_dependents=orphan, precondition_uid=pre.get("uid"),
                             precondition_rv=pre.get("resourceVersion"), dry_run=dry)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        t, q = target.type, request.query
        options = await self._delete_options(request)
        items, _rv = self.store.list_objects(t, target.namespace, q.get("labelSelector", ""),
                                             q.get("fieldSelector", ""))
        deleted = []
        for item in items:
            try:
                obj, _immediate = self.store.delete(t, item["metadata"].get("namespace"), item["metadata"]["name"],
                                                    options)
            except errors.ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append({k: v for k, v in obj.items() if t.crd is not None or k not in ("apiVersion", "kind")})
        return _response({"kind": t.list_kind, "apiVersion": t.group_version,
                          "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted})

    # --- PATCH ----------------------------------------------------------------------------

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        t, q = target.type, request.query
        media = _content_type(request)
        accepted = [JSON_PATCH, MERGE_PATCH] + ([] if t.crd is not None else [STRATEGIC_PATCH]) + [APPLY_PATCH]
        if media not in accepted:
            raise errors.unsupported_media_type(accepted)
        body = await request.read()
        manager = q.get("fieldManager", "")
        dry_run = self._dry_run(request)
        if media == APPLY_PATCH:
            return await self._apply(request, target, body, manager, dry_run)
        if q.get("force") is not None:
            raise errors.invalid("PatchOptions", "meta.k8s.io", "", [errors.field_error(
                "Forbidden", "force", "may not be specified for non-apply patch", with_value=False)])
        live = self.store.get(t, target.namespace, target.name or "")
        try:
            patched = apply_patch(live, body, media, t.kind)
        except PatchError as exc:
            raise _patch_error(exc) from None
        patched = self._managed(request, live, patched, subresource=target.subresource or "")
        obj, _created = self.store.update(t, target.namespace, target.name or "", patched,
                                          subresource=target.subresource or "", dry_run=dry_run)
        return self._render(request, t, obj)

    async def _apply(self, request: web.Request, target: Target, body: bytes, manager: str,
                     dry_run: bool) -> web.Response:
        """Server-side apply (handlers/patch.go applyPatcher): fieldManager is required; a
        missing object is created, unless the patch is on a subresource."""
        t = target.type
        if not manager:
            raise errors.invalid("PatchOptions", "meta.k8s.io", "", [errors.field_error(
                "Required value", "fieldManager", "is required for apply patch", with_value=False)])
        force = _truthy(request.query.get("force"))
        try:
            applied = yaml.safe_load(body.decode() or "{}")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(applied, dict):
            raise errors.bad_request("the object provided is unrecognized: an apply patch must be an object")
        self._check_type(applied, t)
        meta = applied.get("metadata") or {}
        name = target.name or ""
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        live = self.store.find(t, target.namespace, name)
        if live is None and target.subresource:
            raise errors.not_found(t.plural, t.group, name)
        try:
            result = server_side_apply(live, applied, manager, force, self.store.now())
        except ApplyConflict as exc:
            raise errors.apply_conflict(exc.message, list(exc.causes)) from None
        except ApplyError as exc:  # its other refusals (400 / 500)
            raise _patch_error(exc) from None
        if live is None:
            result.setdefault("metadata", {})["name"] = name
            created = self.store.create(t, target.namespace, result, dry_run=dry_run)
            return self._render(request, t, created, 201)
        obj, _created = self.store.update(t, target.namespace, name, result, subresource=target.subresource or "",
                                          dry_run=dry_run)
        return self._render(request, t, obj)

    # --- watch ----------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        """A stream of {"type", "object"} lines (handlers/watch.go), until timeoutSeconds (or
        the server's 30-minute default) passes, the client leaves or the server stops."""
        t, q = target.type, request.query
        field_selector = q.get("fieldSelector", "")
        if target.name is not None:
            field_selector = ",".join(f for f in (f"metadata.name={target.name}", field_selector) if f)
        watch = self.store.watch(t, target.namespace, q.get("resourceVersion", ""), q.get("labelSelector", ""),
                                 field_selector)
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            watch.close()
            raise errors.bad_request(f"invalid timeoutSeconds: {q.get('timeoutSeconds')}") from None
        table_version = _accepts(request, "Table")
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        timed_out = False
        try:
            await response.prepare(request)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    timed_out = True
                    break
                try:
                    item = await asyncio.wait_for(watch.queue.get(), remaining)
                except TimeoutError:
                    timed_out = True
                    break
                if item is None or item.get("type") == "_CLOSE":
                    break
                if table_version in ("v1", "v1beta1") and item["type"] != "ERROR":
                    obj = item["object"]
                    item = {"type": item["type"], "object": resources.table(
                        t, [obj], self.store.clock(), api_version=f"meta.k8s.io/{table_version}",
                        include_object=q.get("includeObject", "Metadata"),
                        resource_version=obj["metadata"].get("resourceVersion", ""))}
                await response.write(json.dumps(item).encode() + b"\n")
            if timed_out and _truthy(q.get("allowWatchBookmarks")) and table_version is None:
                bookmark = {"type": "BOOKMARK", "object": {"kind": t.kind, "apiVersion": t.group_version,
                                                           "metadata": {"resourceVersion": str(self.store.revision)}}}
                await response.write(json.dumps(bookmark).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watch.close()
        return response


def _patch_error(exc: Exception) -> errors.ApiError:
    """A Status from a PatchError / ApplyError: its `status`, `message`, and `reason` and
    `causes` when it has them (a code's usual reason otherwise; none for a plain 500, as
    ErrorToAPIStatus leaves it)."""
    code = int(getattr(exc, "status", 500) or 500)
    message = str(getattr(exc, "message", exc))
    reasons = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 415: "UnsupportedMediaType", 422: "Invalid"}
    reason = getattr(exc, "reason", None)
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message}
    if reason if reason is not None else reasons.get(code):
        status["reason"] = reason if reason is not None else reasons[code]
    causes = list(getattr(exc, "causes", None) or [])
    if causes:
        status["details"] = {"causes": [errors.cause(c) for c in causes]}
    status["code"] = code
    return errors.ApiError(status)


# Per request: the fieldValidation asked for (handlers/rest.go: Warn when not given) and
# the warnings to answer with.
_FIELD_VALIDATION: ContextVar[str] = ContextVar("field_validation", default="Warn")
_WARNINGS: ContextVar[list[str] | None] = ContextVar("warnings", default=None)


def _validation_hook(store: Store) -> Callable[[ResourceType, dict[str, Any]], dict[str, Any]]:
    def hook(t: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Decoding and validation, as botlab.lab.k8s.validation does them: refusals as its
        Invalid says (400 or 422), unknown fields of a built-in dropped after a warning
        (fieldValidation=Warn) or refused (Strict)."""
        mode = _FIELD_VALIDATION.get()
        schema = store.crd_schema(t) if t.crd is not None else None
        try:
            validation.validate(obj, schema, field_validation="Strict" if mode == "Strict" else "Ignore")
        except validation.Invalid as exc:
            raise _refusal(t, obj, exc) from None
        if t.crd is not None:
            return obj
        warnings = _WARNINGS.get()
        if mode == "Warn" and warnings is not None:
            warnings.extend(validation.unknown_fields(obj))
        return validation.drop_unknown_fields(obj)

    return hook


def _refusal(t: ResourceType, obj: dict[str, Any], exc: Exception) -> errors.ApiError:
    code = int(getattr(exc, "status", 422) or 422)
    message = str(getattr(exc, "message", None) or exc)
    if code != 422:
        error = errors.bad_request(message) if code == 400 else errors.unknown(code, message)
        if getattr(exc, "reason", None) and code != 400:
            error.status["reason"] = exc.reason  # type: ignore[attr-defined]
        return error
    name = (obj.get("metadata") or {}).get("name", "")
    return errors.invalid(getattr(exc, "kind", "") or t.kind, getattr(exc, "group", "") or t.group,
                          getattr(exc, "name", "") or name, list(getattr(exc, "causes", []) or []), message=message)


def _item_key(item: dict[str, Any]) -> str:
    meta = item.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@contextlib.contextmanager
def run_k8s(host: str = "127.0.0.1", port: int = 0, token: str | None = None, **kwargs: Any) -> Iterator[K8sApiServer]:
    """Serve a K8sApiServer from a background thread for the `with` block (for synchronous
    clients: the official Python client and kubectl). Reach its store through
    `server.call(fn)` (it belongs to the serving loop)."""
    server = K8sApiServer(host, port, token, **kwargs)
    thread = ServerThread(lambda: [Site(server.app(), server.ssl_context())], [port], host=host,
                          name="k8s-apiserver", label="the Kubernetes API server", on_stop=server.close_watches)
    thread.start()
    server.port = thread.ports[0]
    server.thread = thread
    try:
        yield server
    finally:
        thread.stop()
