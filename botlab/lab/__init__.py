"""The virtual lab: wire-level emulators (MAAS, and later Juju and SSH hosts) for testing botlab."""
