"""Lab hosts: each deployed machine of the virtual MAAS is a real OpenSSH server in its own
network, mount, UTS, PID and user namespaces, on an overlay of this machine's root filesystem
that leaves out everything but the OS (`isolation.py`: what a host may see and be).

`manager.HostManager` is what the MAAS emulator calls on deploy and release; `boot.py` is
the program that runs as PID 1 inside each host (so this package imports nothing eagerly:
every host pays for what PID 1 imports); `network.py` the bridge and veth pairs; `rootfs.py`
what a fresh host's root holds (users, keys, sshd config, host tools); `charms.py` what the
Juju emulator's charms do on hosts. `network.hosts_supported()` (also importable from
manager) says whether this process can create hosts (root, iproute2, util-linux, sshd).
"""
