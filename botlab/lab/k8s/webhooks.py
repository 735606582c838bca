"""Dynamic admission: the API server calling the webhooks of ValidatingWebhookConfigurations and
MutatingWebhookConfigurations (admissionregistration.k8s.io/v1), as operators meet it when a
webhook's pods are not up yet (MetalLB's `ipaddresspoolvalidationwebhook.metallb.io` right after
install, issue 15).

`Webhooks(store)` is the store's `Store.webhooks` hook (K8sApiServer installs one; `of(store)`
returns it, installing it when missing). On a create, an update (PUT/PATCH, subresources
included) or a delete it takes the webhooks whose `rules` match the request (operations,
apiGroups, apiVersions, resources with `*` and `res/sub`, scope), whose namespaceSelector
matches the namespace's labels (a Namespace: its own; other cluster-scoped objects: always) and
whose objectSelector matches the new or the old object's labels, mutating ones first, each
configuration in name order, and "calls" each:

- `clientConfig.service`: reachable when the Service exists, is not headless, has the webhook's
  port (default 443) and selects at least one Ready pod (phase Running, condition Ready True,
  not being deleted) -- what the controllers (controllers/) make of the webhook's Deployment.
  `clientConfig.url`: never reachable.
- Reachable, the lab does not run the webhook's code: it answers allowed, unless an answer was
  registered for the webhook's name with `Webhooks.answer(name, fn)` (fn(request) -> (allowed,
  message) or (allowed, message, code); request: the AdmissionReview request's fields, see
  `_request`). A registered answer also makes a `url` webhook reachable.
- Unreachable: with failurePolicy Fail (the v1 default) the request fails, 500 InternalError
  `Internal error occurred: failed calling webhook "NAME": failed to call webhook: Post
  "https://SVC.NS.svc:PORT/PATH?timeout=10s": dial tcp CLUSTER-IP:PORT: connect: connection
  refused`; with Ignore it goes on.
- Refused: `admission webhook "NAME" denied the request: MESSAGE` with the answer's code,
  default 403 Forbidden (what controller-runtime's admission.Denied answers, and MetalLB's
  webhooks are controller-runtime ones).

Sources (kubernetes/kubernetes v1.31, staging/src/k8s.io/apiserver/pkg/):
admission/plugin/webhook/validating/dispatcher.go and mutating/dispatcher.go (a transport error
is `ErrCallingWebhook{Reason: fmt.Errorf("failed to call webhook: %w", err)}`; failing closed is
`apierrors.NewInternalError(err)`, failing open with Ignore; a refusal is
`webhookerrors.ToStatusErr(h.Name, result.Result)`; the dry-run sideEffects check),
util/webhook/error.go (`failed calling webhook %q: %v`), admission/plugin/webhook/errors/
statuserror.go (`admission webhook %q denied the request: %s`, `... without explanation`, the
webhook's Status code kept), admission/plugin/webhook/predicates/rules/rules.go (rule matching),
predicates/namespace/matcher.go and predicates/object/matcher.go (selectors),
admission/plugin/webhook/generic/webhook.go (webhook configurations are never sent to webhooks),
kube-aggregator's ClusterIP service resolver (the dial goes to the Service's clusterIP: with no
ready endpoint kube-proxy rejects it, hence "connection refused"). controller-runtime
pkg/webhook/admission/response.go ValidationResponse (403, reason Forbidden).

Simplified: mutating webhooks patch nothing (allowed means unchanged) and run after schema
validation, not before; matchPolicy Equivalent is not modelled (apiVersions are compared with
the request's version); matchConditions (CEL) and reinvocationPolicy are ignored; timeouts are
never hit; the webhooks of one configuration are called in order and the first refusal wins
(the real validating ones run in parallel); the controllers' own writes go through the store and
are subject to webhooks too, as they are on a real cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from botlab.lab.k8s import errors
from botlab.lab.k8s.resources import ResourceType
from botlab.lab.k8s.store import SERVICE_CIDR, Obj, Store
from botlab.lab.k8s.validation import label_selector_matches

GROUP = "admissionregistration.k8s.io"
# generic/webhook.go IsExemptAdmissionConfigurationResource: never sent to webhooks.
EXEMPT = {(GROUP, "validatingwebhookconfigurations"), (GROUP, "mutatingwebhookconfigurations"),
          (GROUP, "validatingadmissionpolicies"), (GROUP, "validatingadmissionpolicybindings")}
# When a Service has no clusterIP (never in a lab store, which allocates one): a stable stand-in.
FALLBACK_IP = str(SERVICE_CIDR[75])

Answer = tuple[bool, str] | tuple[bool, str, int]
AnswerFn = Callable[[dict[str, Any]], Answer]


class _CallError(Exception):
    """ErrCallingWebhook: the webhook could not be called (its Reason)."""


class Webhooks:
    """The `Store.webhooks` hook: see the module's docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.answers: dict[str, AnswerFn] = {}

    def answer(self, name: str, fn: AnswerFn | None) -> None:
        """Make the webhook `name` answer with `fn(request)` -> (allowed, message[, code])
        rather than allowing everything (None: back to allowing)."""
        if fn is None:
            self.answers.pop(name, None)
        else:
            self.answers[name] = fn

    def __call__(self, t: ResourceType, operation: str, subresource: str, obj: Obj | None, old: Obj | None,
                 dry_run: bool) -> None:
        if t.key in EXEMPT:
            return
        current = obj if obj is not None else old
        assert current is not None
        namespace = str(current["metadata"].get("namespace") or "") if t.namespaced else ""
        for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            configs, _ = self.store.list_objects(self.store.type_of(GROUP, plural), None)
            for config in configs:
                for hook in config.get("webhooks") or []:
                    if self._matches(hook, t, operation, subresource, namespace, obj, old):
                        request = _request(t, operation, subresource, namespace, obj, old, dry_run)
                        self._call(hook, request, dry_run)

    # --- matching -------------------------------------------------------------------------

    def _matches(self, hook: dict[str, Any], t: ResourceType, operation: str, subresource: str, namespace: str,
                 obj: Obj | None, old: Obj | None) -> bool:
        if not any(rule_matches(rule, t, operation, subresource) for rule in hook.get("rules") or []):
            return False
        if not self._namespace_matches(hook.get("namespaceSelector"), t, namespace, obj, old):
            return False
        selector = hook.get("objectSelector")
        return any(o is not None and selector_matches(selector, _labels(o)) for o in (obj, old))

    def _namespace_matches(self, selector: dict[str, Any] | None, t: ResourceType, namespace: str,
                           obj: Obj | None, old: Obj | None) -> bool:
        """predicates/namespace/matcher.go MatchNamespaceSelector."""
        if t.key == ("", "namespaces"):
            current = obj if obj is not None else old
            return selector_matches(selector, _labels(current))
        if not t.namespaced:
            return True
        if not selector:
            return True
        ns = self.store.find(self.store.type_of("", "namespaces"), None, namespace)
        return selector_matches(selector, _labels(ns))

    # --- calling --------------------------------------------------------------------------

    def _call(self, hook: dict[str, Any], request: dict[str, Any], dry_run: bool) -> None:
        name = str(hook.get("name", ""))
        if dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            # errors/statuserror.go NewDryRunUnsupportedErr.
            raise errors.bad_request(f'admission webhook "{name}" does not support dry run')
        try:
            answer = self._reach(hook, request)
        except _CallError as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return
            raise errors.internal(f'failed calling webhook "{name}": failed to call webhook: {exc}') from None
        allowed, message = answer[0], answer[1]
        if allowed:
            return
        code = answer[2] if len(answer) == 3 else 403
        raise denied(name, message, int(code))

    def _reach(self, hook: dict[str, Any], request: dict[str, Any]) -> Answer:
        """The webhook's answer, or _CallError when it cannot be called."""
        name = str(hook.get("name", ""))
        config = hook.get("clientConfig") or {}
        timeout = int(hook.get("timeoutSeconds") or 10)
        fn = self.answers.get(name)
        if config.get("service"):
            self._reach_service(config["service"], timeout)
        elif fn is None:
            url = urlsplit(str(config.get("url") or ""))
            port = url.port or 443
            raise _CallError(f'Post "{url.geturl()}?timeout={timeout}s": dial tcp {url.hostname}:{port}: '
                             f'connect: connection refused')
        return fn(copy.deepcopy(request)) if fn is not None else (True, "")

    def _reach_service(self, ref: dict[str, Any], timeout: int) -> None:
        ns, svc_name = str(ref.get("namespace", "")), str(ref.get("name", ""))
        port = int(ref.get("port") or 443)
        path = str(ref.get("path") or "/")
        url = f"https://{svc_name}.{ns}.svc:{port}{path}?timeout={timeout}s"
        svc = self.store.find(self.store.type_of("", "services"), ns, svc_name)
        # kube-aggregator's ClusterIP resolver (resolveCluster): the Service, its port, its clusterIP.
        if svc is None:
            raise _CallError(f'Post "{url}": service "{svc_name}" not found')
        spec = svc.get("spec") or {}
        if spec.get("clusterIP") == "None":
            raise _CallError(f'Post "{url}": cannot route to service with ClusterIP "None"')
        if not any(p.get("port") == port for p in spec.get("ports") or []):
            raise _CallError(f'Post "{url}": no service port {port} found for service "{svc_name}"')
        if not self._ready_endpoint(ns, spec.get("selector") or {}):
            ip = spec.get("clusterIP") or FALLBACK_IP
            raise _CallError(f'Post "{url}": dial tcp {ip}:{port}: connect: connection refused')

    def _ready_endpoint(self, namespace: str, selector: dict[str, str]) -> bool:
        """Whether the Service's selector picks a Ready pod (a Service without one has no endpoints)."""
        if not selector:
            return False
        pods, _ = self.store.list_objects(self.store.type_of("", "pods"), namespace)
        for pod in pods:
            labels = _labels(pod)
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            status = pod.get("status") or {}
            if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
                continue
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                return True
        return False


def of(store: Store) -> Webhooks:
    """The store's webhook dispatcher, installed as `Store.webhooks` when it has none."""
    if not isinstance(store.webhooks, Webhooks):
        if store.webhooks is not None:
            raise TypeError("the store's webhooks hook is not a botlab.lab.k8s.webhooks.Webhooks")
        store.webhooks = Webhooks(store)
    return store.webhooks


def denied(name: str, message: str, code: int = 403) -> errors.ApiError:
    """statuserror.go ToStatusErr (v1.31) on controller-runtime's denial (code 403, reason
    Forbidden); another code gets its usual reason (none when unusual)."""
    reason = {400: "BadRequest", 403: "Forbidden", 409: "Conflict", 422: "Invalid",
              500: "InternalError"}.get(code, "")
    text = f'admission webhook "{name}" denied the request'
    text = f"{text}: {message}" if message else f"{text} without explanation"
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": text}
    if reason:
        status["reason"] = reason
    status["code"] = code
    return errors.ApiError(status)


def rule_matches(rule: dict[str, Any], t: ResourceType, operation: str, subresource: str) -> bool:
    """predicates/rules/rules.go Matcher.Matches."""
    def listed(values: Any, value: str) -> bool:
        return any(v == "*" or v == value for v in values or [])

    if not listed(rule.get("operations"), operation):
        return False
    if not listed(rule.get("apiGroups"), t.group) or not listed(rule.get("apiVersions"), t.version):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and t.namespaced) or (scope == "Namespaced" and not t.namespaced):
        return False
    for resource in rule.get("resources") or []:
        res, _, sub = str(resource).partition("/")
        if (res == "*" or res == t.plural) and (sub == "*" or sub == subresource):
            return True
    return False


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A webhook's namespaceSelector/objectSelector: an empty or missing one matches all."""
    return not selector or label_selector_matches(selector, labels)


def _labels(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _request(t: ResourceType, operation: str, subresource: str, namespace: str, obj: Obj | None,
             old: Obj | None, dry_run: bool) -> dict[str, Any]:
    """The fields of an admission.k8s.io/v1 AdmissionReview request a webhook reads."""
    current = obj if obj is not None else old
    assert current is not None
    return {"kind": {"group": t.group, "version": t.version, "kind": t.kind},
            "resource": {"group": t.group, "version": t.version, "resource": t.plural},
            "subResource": subresource, "name": current["metadata"].get("name", ""), "namespace": namespace,
            "operation": operation, "object": obj, "oldObject": old, "dryRun": dry_run}
