"""The fan-out benchmark's task for pyinfra (bench/fanout.py): what botlab's
playbooks/gpu-docker.yaml does on a GPU host running docker. The facts line is exec_start.sh
beside this file; the reload and restart run only when the drop-in changed."""

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

DROPIN = "/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf"
RUNTIME = "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"
FACTS_LINE = (Path(__file__).resolve().parent / "exec_start.sh").read_text()

exec_start = host.get_fact(Command, command=FACTS_LINE, _sudo=True)
dropin = files.put(
    name="docker.service drop-in with the nvidia runtime",
    src=StringIO(f"[Service]\nExecStart=\nExecStart={exec_start} {RUNTIME}\n"),
    dest=DROPIN, user="root", group="root", mode="644", _sudo=True,
)
server.shell(
    name="daemon-reload, restart docker",
    commands=["systemctl daemon-reload", "systemctl restart docker"],
    _sudo=True, _if=dropin.did_change,
)
