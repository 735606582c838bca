#!/usr/bin/env bash
# `make demo`: start the virtual lab, then run botlab on it end to end as an operator would.
# KEEP_LAB=1 leaves the lab running afterwards (stop it with `botlab lab stop --dir lab`).
set -euo pipefail
BIN=${BIN:-.venv/bin}
LAB=${LAB:-lab}
botlab() { "$BIN/botlab" "$@"; }

botlab lab stop --dir "$LAB" >/dev/null 2>&1 || true
rm -rf "$LAB/inventory/.botlab"
if [ "${KEEP_LAB:-0}" != 1 ]; then
  trap 'botlab lab stop --dir "$LAB"' EXIT
fi

echo "### botlab lab start: an emulated MAAS and Juju controller, 6 machines (2 with GPUs, 3 not enlisted yet)"
botlab lab start --dir "$LAB" --machines 6 --gpus 2 --unenlisted 3 --commissioning-s 3 --name demo
INV="$LAB/inventory"

echo; echo "### botlab validate"
botlab -i "$INV" validate
echo; echo "### botlab plan enlist (before anything exists)"
botlab -i "$INV" plan enlist
echo; echo "### botlab up enlist"
botlab -i "$INV" up enlist
echo; echo "### botlab up enlist, again: done stages are only verified"
botlab -i "$INV" up enlist
echo; echo "### botlab render kubernetes: the Juju bundle from the inventory, every machine pinned to its host"
botlab -i "$INV" render kubernetes
echo; echo "### botlab plan kubernetes --out: the plan before the model exists, saved for review"
botlab -i "$INV" plan kubernetes --out "$LAB/kubernetes-plan.json"
echo; echo "### botlab up --plan: exactly the reviewed plan; Juju deploys each host through MAAS, units settle, kubeconfig fetched"
botlab -i "$INV" up --plan "$LAB/kubernetes-plan.json"
echo; echo "### botlab up kubernetes, again: verified, nothing changed in Juju or MAAS"
botlab -i "$INV" up kubernetes
echo; echo "### botlab status"
botlab -i "$INV" status
echo; echo "### botlab lab status"
botlab lab status --dir "$LAB"

hosts_on=$(botlab lab status --dir "$LAB" -o json | "$BIN/python" -c 'import json, sys; print(int(bool(json.load(sys.stdin).get("hosts"))))')
if [ "$hosts_on" != 1 ]; then
  echo; echo "(this lab has no hosts: run as root for SSH hosts in network namespaces; the gpu stage needs them)"
  exit 0
fi

echo; echo "### botlab plan gpu: the NVIDIA runtime on the GPU hosts (method charm: the containerd charm's gpu_driver)"
botlab -i "$INV" plan gpu
echo; echo "### botlab up: every stage; enlist and kubernetes are verified, gpu registers the runtime"
botlab -i "$INV" up
echo; echo "### botlab up, again: every stage verified, nothing changed"
botlab -i "$INV" up

echo; echo "### each GPU host's runtime, over SSH at the address and host key the kubernetes stage's outputs give (from Juju)"
botlab -i "$INV" status -o json | "$BIN/python" -c '
import json, sys
stages = {s["stage"]: s for s in json.load(sys.stdin)["stages"]}
hosts = stages["kubernetes"]["outputs"]["hosts"]
for name, gpu in sorted(stages["gpu"]["outputs"]["hosts"].items()):
    d = hosts[name]
    print(name, d["address"], " ".join(d["host_keys"][0].split()[:2]), gpu["runtime"])
' | while read -r name address keytype key runtime; do
  echo "${address} ${keytype} ${key}" > "$LAB/known_hosts"
  ssh -n -i "$LAB/keys/id_ed25519" -o UserKnownHostsFile="$LAB/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes "ubuntu@${address}" \
    "echo \"${name}: containerd \$(systemctl is-active containerd), \$(nvidia-smi -L | wc -l) GPU(s)\";
     containerd config dump | grep -E 'default_runtime_name|BinaryName'" | sed 's/^/  /'
  echo "  botlab's record: runtime ${runtime}"
done

echo; echo "### the cluster's Nodes and the GPUs each advertises (the kubeconfig botlab fetched through Juju)"
KUBECONFIG_FILE="$INV/.botlab/kubeconfig"
if command -v kubectl >/dev/null 2>&1; then
  kubectl --kubeconfig "$KUBECONFIG_FILE" get nodes \
    -o custom-columns='NAME:.metadata.name,ROLE:.metadata.labels.juju-application,GPUS:.status.allocatable.nvidia\.com/gpu'
else
  "$BIN/python" - "$KUBECONFIG_FILE" <<'PY'
import sys
from kubernetes import client, config
api = client.CoreV1Api(config.new_client_from_config(sys.argv[1]))
print(f"{'NAME':10} {'ROLE':26} GPUS")
for n in api.list_node().items:
    print(f"{n.metadata.name:10} {n.metadata.labels.get('juju-application', ''):26} {(n.status.allocatable or {}).get('nvidia.com/gpu', '<none>')}")
PY
fi
