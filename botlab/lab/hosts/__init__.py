"""Lab hosts: each deployed machine of the virtual MAAS is a real OpenSSH server in its own
network, mount, UTS and PID namespaces, on an overlay of this machine's root filesystem.

`HostManager` (manager.py) is what the MAAS emulator calls on deploy and release; `boot.py`
is the program that runs as PID 1 inside each host; `network.py` the bridge and veth pairs;
`rootfs.py` what a fresh host's root holds (users, keys, sshd config, host tools).
Creating namespaces needs root: `hosts_supported()` says whether this process can.
"""

from botlab.lab.hosts.manager import HostManager, hosts_supported

__all__ = ["HostManager", "hosts_supported"]
