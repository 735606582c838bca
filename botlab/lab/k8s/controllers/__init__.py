"""The cluster behind the lab's Kubernetes API server: controllers, a scheduler, kubelets and
the NVIDIA device plugin, so that what botlab's stages wait for really happens (issue 15).

`Controllers(store, runtimes_of=..., gpus_of=..., delays=Delays())` runs on the API server's
event loop (the store belongs to it). Each pass (`step()`, or `sync()` without a loop) reads the
objects and reconciles every controller once, as the real ones do from their informers; `run()`
repeats passes whenever the store changes (a `Store.listeners` hook) and every `delays.tick_s`
(for the modelled delays). Attach it to a server with `K8sApiServer(..., controllers=with_controllers(...))`
(or `run_k8s(controllers=...)`): the server starts `run()` with its application and stops it
with it.

The package, one module per part (each module's doc says what it follows, kubernetes/kubernetes
at tag v1.31.x unless said otherwise):

- `engine`: `Controllers` (run / step / sync / settle, the passes in order) and `with_controllers`.
- `base`: `ControllerBase` (the store, store access, events, owned objects, ControllerRevisions),
  `Delays`, `RuntimesOf`, `GpusOf`.
- `objects`: small helpers (metadata, conditions, pod states, times, quantities, requests,
  template hashes) and the well-known names.
- `admission`: the pod admission plugins (`admission(store)`).
- `node_lifecycle`: the NoSchedule taints for node conditions.
- `deployments`, `replicasets`, `daemonsets`, `statefulsets`: the workload controllers.
- `scheduling`: node affinity, taints and tolerations, `NodeInfo`, `fit_error`, the scheduler.
- `kubelet`: pod start, RuntimeClass sandbox failures, kubelet admission, the NVIDIA device plugin.
- `podgc`: pod garbage collection.

Simplified: no proportional scaling of several active ReplicaSets, no adoption or release of
pods by label, no PodDisruptionBudgets, no pod topology spread or inter-pod affinity filters,
volumes are not checked by the scheduler (PVCs stay Pending: there is no provisioner), no
taint-based eviction (NoExecute taints are not added to nodes, pods are not evicted), pods do
not terminate by themselves (restartPolicy Never pods stay Running), probes are not run (a
started container is ready at once), restart counts do not grow, events are not aggregated
into series (each distinct message is recorded once), pods recreated by a StatefulSet always
take the update revision, pod-template-hash is a hash of the template's JSON (not Go's
DeepHashObject, so the names differ from a real cluster's), and the scheduler picks among
equally scored nodes by name.
"""

from botlab.lab.k8s.controllers.admission import admission
from botlab.lab.k8s.controllers.base import ControllerBase, Delays, GpusOf, RuntimesOf
from botlab.lab.k8s.controllers.engine import Controllers, with_controllers
from botlab.lab.k8s.controllers.objects import DEVICE_PLUGIN_IMAGE, GPU, amount, pod_requests, quantity, template_hash
from botlab.lab.k8s.controllers.scheduling import NodeInfo, fit_error

__all__ = [
    "DEVICE_PLUGIN_IMAGE",
    "GPU",
    "ControllerBase",
    "Controllers",
    "Delays",
    "GpusOf",
    "NodeInfo",
    "RuntimesOf",
    "admission",
    "amount",
    "fit_error",
    "pod_requests",
    "quantity",
    "template_hash",
    "with_controllers",
]
