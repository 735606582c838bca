"""dockerd validates flags and daemon.json as moby 24 does; `docker info` shows the *running* daemon."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.hosttools.conftest import CPU_FACTS, Host

NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
BUILTIN = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
JOB_FAILED = ('Job for docker.service failed because the control process exited with error code.\n'
              'See "systemctl status docker.service" and "journalctl -xeu docker.service" for details.\n')


def runtimes(host: Host) -> dict[str, object]:
    result: dict[str, object] = json.loads(host.ok("docker", "info", "--format", "{{json .Runtimes}}"))
    return result


def exec_start_argv(host: Host, unit: str) -> str:
    """The command line of the loaded ExecStart=, as the operators' guide builds its drop-in from."""
    value = host.show(unit, "ExecStart")
    return next(part for part in value.strip("{} ").split(" ; ") if part.startswith("argv[]="))[len("argv[]="):]


def test_docker_cli_without_a_daemon(docker_host: Host) -> None:
    info = docker_host.run("docker", "info")
    assert info.returncode == 1
    assert info.stdout == "Client:\n Version:    24.0.7\n Context:    default\n Debug Mode: false\n\nServer:\n"
    assert info.stderr == f"ERROR: {NO_DAEMON}\nerrors pretty printing info\n"
    # With --format the real CLI prints the error, then formats an empty Info, and exits 0.
    formatted = docker_host.run("docker", "info", "--format", "{{json .Runtimes}}")
    assert (formatted.returncode, formatted.stdout, formatted.stderr) == (0, "null\n", f"{NO_DAEMON}\n")
    version = docker_host.run("docker", "version")
    assert version.returncode == 1 and version.stderr == f"{NO_DAEMON}\n"
    assert docker_host.ok("docker", "--version") == "Docker version 24.0.7, build 24.0.7-0ubuntu2~22.04.1\n"


def test_nvidia_runtime_only_after_restart_with_dropin(docker_host: Host) -> None:
    host = docker_host
    boot = host.run("systemctl", "--lab-boot")
    assert boot.returncode == 0 and boot.stdout == "", boot.stdout
    assert host.ok("systemctl", "is-active", "containerd", "docker") == "active\nactive\n"
    assert runtimes(host) == BUILTIN
    argv = exec_start_argv(host, "docker")
    assert argv == "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"
    host.write("/etc/systemd/system/docker.service.d/nvidia.conf",
               f"[Service]\nExecStart=\nExecStart={argv} --add-runtime nvidia=/usr/bin/nvidia-container-runtime\n")

    stale = host.run("systemctl", "restart", "docker")
    assert stale.returncode == 0 and "changed on disk. Run 'systemctl daemon-reload'" in stale.stderr
    assert runtimes(host) == BUILTIN

    host.ok("systemctl", "daemon-reload")
    host.ok("systemctl", "restart", "docker")
    assert runtimes(host) == {**BUILTIN, "nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}
    assert host.ok("docker", "info", "--format", "{{.DefaultRuntime}}") == "runc\n"
    state = host.json("/run/docker/lab-state.json")
    assert state["runtimes"]["nvidia"] == {"path": "/usr/bin/nvidia-container-runtime"}
    assert state["pid"] == int(host.show("docker", "MainPID"))
    assert state["containerd"] == "/run/containerd/containerd.sock"
    assert " Runtimes: io.containerd.runc.v2 nvidia runc\n Default Runtime: runc\n" in host.ok("docker", "info")

    # daemon.json changes show only once the daemon restarted.
    host.write("/etc/docker/daemon.json", '{"default-runtime": "nvidia"}\n')
    assert host.ok("docker", "info", "--format", "{{.DefaultRuntime}}") == "runc\n"
    host.ok("systemctl", "restart", "docker")
    assert host.ok("docker", "info", "--format", "{{.DefaultRuntime}}") == "nvidia\n"


def test_flag_and_file_conflicts(docker_host: Host) -> None:
    host = docker_host
    host.ok("systemctl", "start", "docker")
    argv = exec_start_argv(host, "docker")
    host.write("/etc/systemd/system/docker.service.d/nvidia.conf",
               f"[Service]\nExecStart=\nExecStart={argv} --add-runtime nvidia=/usr/bin/nvidia-container-runtime "
               "--default-runtime=nvidia\n")
    host.write("/etc/docker/daemon.json", json.dumps({
        "default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime",
                                                             "runtimeArgs": []}}}, indent=4))
    host.ok("systemctl", "daemon-reload")
    restart = host.run("systemctl", "restart", "docker")
    assert (restart.returncode, restart.stderr) == (1, JOB_FAILED)
    assert host.run("systemctl", "is-active", "docker").stdout == "failed\n"
    assert ("\nunable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are "
            "specified both as a flag and in the configuration file: default-runtime: (from flag: nvidia, from file: "
            "nvidia)\n") in host.ok("journalctl", "-u", "docker")

    # The same runtime given both ways is no conflict since Docker 18.09 (skipDuplicates): the file's wins.
    host.write("/etc/systemd/system/docker.service.d/nvidia.conf",
               f"[Service]\nExecStart=\nExecStart={argv} --add-runtime nvidia=/usr/bin/nvidia-container-runtime\n")
    host.ok("systemctl", "daemon-reload")
    host.ok("systemctl", "restart", "docker")
    assert runtimes(host)["nvidia"] == {"path": "/usr/bin/nvidia-container-runtime"}

    host.write("/etc/docker/daemon.json", '{"hosts": ["fd://"], "debug": true}')
    validate = host.run("dockerd", "--validate", "-H", "unix:///var/run/docker.sock", "--debug")
    assert (validate.returncode, validate.stderr) == (1, (
        "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are "
        "specified both as a flag and in the configuration file: debug: (from flag: true, from file: true), hosts: "
        "(from flag: [unix:///var/run/docker.sock], from file: [fd://])\n"))


def test_daemon_json_and_flag_errors(docker_host: Host) -> None:
    host = docker_host
    prefix = "unable to configure the Docker daemon with file /etc/docker/daemon.json: "
    cases = {
        '{\n  "runtimes": {},\n}\n': "invalid character '}' looking for beginning of object key string",
        '{"log-level": "debug" "debug": true}': "invalid character '\"' after object key:value pair",
        # A nested object that is no known map option is flattened first, so its keys are what is unknown.
        '{"runtime": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}': (
            "the following directives don't match any configuration option: nvidia"),
        '{"default_runtime": "nvidia"}': (
            "the following directives don't match any configuration option: default_runtime"),
        '{"default-runtime": "nvidia"}': ("merged configuration validation from file and command line flags failed: "
                                          "specified default runtime 'nvidia' does not exist"),
        '{"runtimes": {"runc": {"path": "/usr/bin/runc"}}}': ("merged configuration validation from file and command "
                                                             "line flags failed: runtime name 'runc' is reserved"),
        '{"runtimes": {"nvidia": {"path": 7}}}': ("json: cannot unmarshal number into Go struct field "
                                                  "Runtime.runtimes.path of type string"),
        '[]': "json: cannot unmarshal array into Go value of type map[string]interface {}",
    }
    for text, message in cases.items():
        host.write("/etc/docker/daemon.json", text)
        proc = host.run("dockerd", "--validate")
        assert (proc.returncode, proc.stderr) == (1, prefix + message + "\n"), text
    host.write("/etc/docker/daemon.json", "")
    ok = host.run("dockerd", "--validate")
    assert (ok.returncode, ok.stderr) == (0, "configuration OK\n")

    flags = {
        ("--frobnicate",): "Status: unknown flag: --frobnicate\nSee 'dockerd --help'., Code: 125",
        ("-Z",): "Status: unknown shorthand flag: 'Z' in -Z\nSee 'dockerd --help'., Code: 125",
        ("--add-runtime", "nvidia"): ('Status: invalid argument "nvidia" for "--add-runtime" flag: invalid runtime '
                                      "argument: nvidia\nSee 'dockerd --help'., Code: 125"),
        ("--config-file",): "Status: flag needs an argument: --config-file\nSee 'dockerd --help'., Code: 125",
        ("--config-file", "/etc/docker/other.json"): (
            "unable to configure the Docker daemon with file /etc/docker/other.json: open /etc/docker/other.json: no "
            "such file or directory"),
        ("--default-runtime", "nvidia"): "specified default runtime 'nvidia' does not exist",
        ("-H", "fd://"): ("failed to load listeners: no sockets found via socket activation: make sure the service "
                          "was started by systemd"),
    }
    host.path("/etc/docker/daemon.json").unlink()
    for args, message in flags.items():
        proc = host.run("dockerd", *args)
        assert proc.returncode == 1, args
        assert proc.stderr.endswith("\n" + message + "\n") or proc.stderr == message + "\n", (args, proc.stderr)


def test_missing_runtime_binary_refuses_to_start(host_factory: Any) -> None:
    host: Host = host_factory(CPU_FACTS, ("docker.io",))
    host.write("/etc/docker/daemon.json", '{"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}')
    start = host.run("systemctl", "start", "docker")
    assert (start.returncode, start.stderr) == (1, JOB_FAILED)
    assert ('\nfailed to start daemon: error while looking up the specified runtime path: exec: '
            '"/usr/bin/nvidia-container-runtime": stat /usr/bin/nvidia-container-runtime: no such file or directory\n'
            in host.ok("journalctl", "-u", "docker"))
    host.write("/etc/docker/daemon.json", '{"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}')
    assert host.run("systemctl", "restart", "docker").returncode == 1
    assert ('error while looking up the specified runtime path: exec: "nvidia-container-runtime": executable file '
            "not found in $PATH\n" in host.ok("journalctl", "-u", "docker"))
    assert host.run("docker", "info").returncode == 1


def test_nvidia_ctk_configures_a_config_dockerd_accepts(docker_host: Host) -> None:
    host = docker_host
    host.write("/etc/docker/daemon.json", '{"log-level": "warn"}')
    configure = host.run("nvidia-ctk", "runtime", "configure", "--runtime=docker", "--set-as-default")
    assert configure.returncode == 0
    messages = [line.split(" msg=", 1)[1] for line in configure.stderr.splitlines()]
    assert messages == ['"Loading config from /etc/docker/daemon.json"',
                        '"Wrote updated config to /etc/docker/daemon.json"',
                        '"It is recommended that docker daemon be restarted."']
    assert host.read("/etc/docker/daemon.json") == (
        '{\n    "default-runtime": "nvidia",\n    "log-level": "warn",\n    "runtimes": {\n        "nvidia": {\n'
        '            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}')
    host.ok("systemctl", "--lab-boot")
    assert runtimes(host)["nvidia"] == {"path": "nvidia-container-runtime"}
    assert host.ok("docker", "info", "--format", "{{.DefaultRuntime}}") == "nvidia\n"
    assert host.ok("docker", "info", "--format",
                   '{{range $name, $rt := .Runtimes}}{{$name}}={{$rt.path}};{{end}}') == (
        "io.containerd.runc.v2=runc;nvidia=nvidia-container-runtime;runc=runc;\n")

    bad = host.run("nvidia-ctk", "runtime", "configure", "--runtime=podman")
    assert bad.returncode == 1 and 'level=error msg="unrecognized runtime \'podman\'"' in bad.stderr
    assert host.ok("nvidia-ctk", "--version") == (
        "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\n")
