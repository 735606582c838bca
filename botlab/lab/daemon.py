"""The virtual lab's background process: serves the emulators on loopback until SIGTERM.

`botlab lab start` spawns `python -m botlab.lab.daemon DIR`; it reads DIR/spec.yaml, serves
the MAAS emulator (with lab hosts behind it when settings say so: SSH servers in network
namespaces, see botlab.lab.hosts) and the Juju controller emulator (on that MAAS), writes DIR/juju (a
JUJU_DATA folder for the controller) and the inventory, then DIR/lab.json last (its presence
means ready).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from botlab.lab.spec import load_spec


def serve(lab_dir: Path) -> None:
    from botlab.lab.inventory import write_lab_inventory
    from botlab.lab.juju import JujuEmulator
    from botlab.lab.juju.charmhub import CharmhubEmulator
    from botlab.lab.maas import MaasEmulator
    from botlab.lab.thread import AppThread

    settings = json.loads((lab_dir / "settings.json").read_text())
    spec = load_spec(lab_dir / "spec.yaml")
    with contextlib.ExitStack() as running:  # stops what started, in reverse order, however we leave
        hosts = None
        if settings.get("hosts"):
            from botlab.lab.hosts.manager import HostManager

            hosts = HostManager(lab_dir, spec)
            running.callback(hosts.stop)
            hosts.start()
        maas = MaasEmulator(spec, hosts=hosts)
        server = AppThread(maas.app, port=int(settings.get("maas_port", 0)), name="lab-maas")
        base = server.start()
        running.callback(server.stop)
        maas.serving_at(base)
        maas_url = maas.url
        # Models fetch charm metadata from Charmhub: point them at the lab's own, never the real one.
        charmhub = CharmhubEmulator()
        charmhub.start()
        running.callback(charmhub.stop)
        juju = JujuEmulator(spec, maas_url, maas.api_key, port=int(settings.get("juju_port", 0)),
                            model_defaults={"charmhub-url": charmhub.url})
        running.callback(juju.stop)
        juju.start()
        juju_data = juju.write_juju_data(lab_dir / "juju")
        if hosts is not None:
            from botlab.lab.hosts.charms import HostCharms

            running.callback(HostCharms(juju, hosts).attach().detach)
        from botlab.lab.k8s.cluster import LabClusters

        running.callback(LabClusters(juju, hosts).attach().detach)
        inventory = write_lab_inventory(
            lab_dir, spec, maas_url, settings["name"],
            juju_data=juju_data, juju_controller=juju.controller_name, juju_cloud=juju.cloud_name,
        )
        record = {
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "maas_url": maas_url,
            "control_url": f"{base}/_lab/",
            "inventory": str(inventory),
            "name": settings["name"],
            "juju_endpoint": juju.endpoint,
            "juju_control_url": juju.control_url,
            "juju_data": str(juju_data),
            "charmhub_url": charmhub.url,
            "hosts": hosts is not None,
        }
        running.callback((lab_dir / "lab.json").unlink, missing_ok=True)
        tmp = lab_dir / "lab.json.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(lab_dir / "lab.json")
        print(f"lab ready: MAAS at {maas_url}, Juju controller at {juju.endpoint} (JUJU_DATA={juju_data})",
              flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    print("lab stopped", flush=True)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(Path(sys.argv[1]))
