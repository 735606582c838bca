"""An emulated Kubernetes 1.31 API server for the virtual lab (docs/lab-k8s.md)."""

from botlab.lab.k8s.server import K8sApiServer, K8sCerts, make_certs, run_k8s
from botlab.lab.k8s.store import Store

__all__ = ["K8sApiServer", "K8sCerts", "Store", "make_certs", "run_k8s"]
