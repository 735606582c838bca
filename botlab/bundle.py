"""Render the kubernetes stage's Juju bundle from the inventory (Jinja2, strict).

The built-in template is bundles/charmed-kubernetes.yaml.j2; an inventory may name its own
(`kubernetes.bundle`), which gets the same variables. Rendering touches nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab import names
from botlab.errors import InputError, Location, Problem

if TYPE_CHECKING:
    from collections.abc import Mapping

    from botlab.inventory import Inventory

TEMPLATE = "charmed-kubernetes.yaml.j2"


def builtin_template() -> Path:
    """bundles/ of a source checkout, else where setup.cfg's data_files installed it."""
    here = Path(__file__).resolve().parent.parent / "bundles" / TEMPLATE
    return here if here.exists() else Path(sys.prefix) / "share" / "botlab" / "bundles" / TEMPLATE

# The etcd charm is published in Charmed Kubernetes' tracks (1.31/stable ...), as the upstream
# bundle deploys it; 3.4/stable is the etcd snap it installs (its `channel` option).
ETCD_SNAP_CHANNEL = "3.4/stable"
KUBERNETES_ROLES = ("control-plane", "worker", "etcd", "load-balancer")


@dataclass(frozen=True)
class BundleMachine:
    id: str
    hostname: str
    pin_tag: str
    roles: tuple[str, ...]


def bundle_machines(inv: Inventory, pins: Mapping[str, str] | None = None,
                    ) -> tuple[list[BundleMachine], list[BundleMachine]]:
    """(machines in the bundle, machines with no Kubernetes role), ids in inventory order;
    `pins`: each host's pin tag (default: the one enlist gives it)."""
    placed: list[BundleMachine] = []
    bare: list[BundleMachine] = []
    for m in inv.machines:
        target = placed if any(m.has_role(r) for r in KUBERNETES_ROLES) else bare
        pin = pins[m.hostname] if pins and m.hostname in pins else names.pin_tag(inv.name, m.hostname)
        target.append(BundleMachine("", m.hostname, pin, m.roles))
    numbered = [BundleMachine(str(i), b.hostname, b.pin_tag, b.roles) for i, b in enumerate(placed)]
    return numbered, bare


def template_variables(inv: Inventory, pins: Mapping[str, str] | None = None) -> dict[str, Any]:
    machines, bare = bundle_machines(inv, pins)

    def ids(pred: Any) -> list[str]:
        return [m.id for m in machines if pred(m)]

    gpu = {m.hostname for m in inv.with_role("gpu")}
    workers = ids(lambda m: "worker" in m.roles and m.hostname not in gpu)
    gpu_workers = ids(lambda m: "worker" in m.roles and m.hostname in gpu)
    k8s = inv.kubernetes
    worker_apps = ([("kubernetes-worker", "containerd")] if workers else []) + (
        [("kubernetes-worker-gpu", "containerd-gpu")] if gpu_workers else [])
    return {
        "lab": inv.name,
        "channel": k8s.channel,
        "snap_channel": k8s.channel,
        "etcd_channel": k8s.channel,
        "etcd_snap_channel": ETCD_SNAP_CHANNEL,
        "cni": k8s.cni,
        "runtime": k8s.container_runtime,
        "gpu_method": k8s.gpu_method,
        "machines": machines,
        "bare": bare,
        "control_plane": ids(lambda m: "control-plane" in m.roles),
        "etcd": ids(lambda m: "etcd" in m.roles),
        "load_balancer": ids(lambda m: "load-balancer" in m.roles),
        "workers": workers,
        "gpu_workers": gpu_workers,
        "worker_apps": worker_apps,
    }


def render_bundle(inv: Inventory, pins: Mapping[str, str] | None = None) -> str:
    """The bundle YAML for `inv` (`pins`: each host's pin tag, as enlist recorded it); a
    template error is bad input (exit 2) naming the template."""
    import jinja2

    custom = inv.kubernetes.bundle
    template_path = Path(custom) if custom else builtin_template()
    if custom is None and inv.kubernetes.container_runtime != "containerd":
        raise InputError([Problem(inv.where("kubernetes.container_runtime"), "kubernetes.container_runtime",
                                  "the built-in bundle uses containerd; for docker, set kubernetes.bundle"
                                  " to a template of your own")])
    if not inv.with_role("control-plane") or not inv.with_role("etcd"):
        raise InputError([Problem(inv.where("machines"), "machines",
                                  "the Kubernetes bundle needs a control-plane and an etcd machine")])
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_path.parent)),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
    )
    try:
        return env.get_template(template_path.name).render(**template_variables(inv, pins))
    except jinja2.TemplateError as exc:
        where = Location(str(template_path), getattr(exc, "lineno", None) or _template_line(exc, template_path))
        raise InputError([Problem(where, "kubernetes.bundle", f"template error: {exc}")]) from None


def _template_line(exc: BaseException, template: Path) -> int | None:
    """Render-time errors carry no line; Jinja2 maps the template's frames in the traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(template):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
