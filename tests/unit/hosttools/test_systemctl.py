"""The lab's systemctl behaves as systemd 252: unit + drop-in loading, the loaded-vs-on-disk distinction,
refused settings, service life cycle and the messages and exit codes that come with them."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.unit.hosttools.conftest import Host

DEMO = """[Unit]
Description=Demo daemon
Documentation=https://example.invalid/demo

[Service]
Type=notify
Environment="GREETING=hello world"
ExecStart=/usr/local/bin/testd --mode one

[Install]
WantedBy=multi-user.target
"""

JOB_FAILED = ('Job for {0} failed because the control process exited with error code.\n'
              'See "systemctl status {0}" and "journalctl -xeu {0}" for details.\n')


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return [part.decode() for part in fh.read().split(b"\0") if part]


def test_unit_and_dropins_merge_in_systemd_order(host: Host) -> None:
    host.write("/lib/systemd/system/demo.service", DEMO)
    # Same file name in /etc hides the one in /lib; drop-ins apply in file name order across directories.
    host.write("/lib/systemd/system/demo.service.d/50-args.conf", "[Service]\nExecStart=\nExecStart=/bin/false\n")
    host.write("/etc/systemd/system/demo.service.d/50-args.conf",
               "[Service]\n"
               "# a comment, then a reset and a continued, quoted command line\n"
               "ExecStart=\n"
               'ExecStart=/usr/local/bin/testd --mode "two words" \\\n'
               "    --flag=\\x41 ${GREETING}\n")
    host.write("/run/systemd/system/demo.service.d/10-env.conf", "[Service]\nEnvironment=GREETING=hi EXTRA=1\n")
    host.ok("systemctl", "daemon-reload")

    assert host.show("demo.service", "ExecStart") == (
        "{ path=/usr/local/bin/testd ; argv[]=/usr/local/bin/testd --mode two words --flag=A ${GREETING} ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }")
    assert host.show("demo", "DropInPaths") == (
        "/run/systemd/system/demo.service.d/10-env.conf /etc/systemd/system/demo.service.d/50-args.conf")
    assert host.show("demo", "FragmentPath") == "/lib/systemd/system/demo.service"
    assert host.show("demo", "Environment") == "GREETING=hi EXTRA=1"
    assert host.show("demo", "Type") == "notify"

    host.ok("systemctl", "start", "demo")
    pid = int(host.show("demo", "MainPID"))
    assert cmdline(pid)[2:] == ["--mode", "two words", "--flag=A", "hi"]  # [python3, script path, ...]
    status = host.run("systemctl", "status", "demo")
    assert status.returncode == 0
    assert "     Loaded: loaded (/lib/systemd/system/demo.service; disabled; preset: enabled)\n" in status.stdout
    assert ("    Drop-In: /run/systemd/system/demo.service.d\n             \u2514\u250010-env.conf\n"
            "             /etc/systemd/system/demo.service.d\n             \u2514\u250050-args.conf\n") in status.stdout
    assert "     Active: active (running) since " in status.stdout
    assert f"   Main PID: {pid} (testd)\n" in status.stdout
    assert "testd argv: --mode two words --flag=A hi" in status.stdout
    assert host.ok("systemctl", "is-active", "demo") == "active\n"
    host.ok("systemctl", "stop", "demo")
    assert host.run("systemctl", "is-active", "demo").stdout == "inactive\n"


def test_changed_files_need_daemon_reload(host: Host) -> None:
    host.write("/lib/systemd/system/demo.service", DEMO)
    host.ok("systemctl", "daemon-reload")
    host.ok("systemctl", "start", "demo")
    host.write("/etc/systemd/system/demo.service.d/override.conf",
               "[Service]\nExecStart=\nExecStart=/usr/local/bin/testd --mode new\n")

    restart = host.run("systemctl", "restart", "demo")
    assert restart.returncode == 0
    assert restart.stderr == ("Warning: The unit file, source configuration file or drop-ins of demo.service changed "
                              "on disk. Run 'systemctl daemon-reload' to reload units.\n")
    assert host.show("demo", "NeedDaemonReload") == "yes"
    assert cmdline(int(host.show("demo", "MainPID")))[2:] == ["--mode", "one"]
    assert "Warning: The unit file, source configuration file or drop-ins of demo.service changed on disk." in (
        host.run("systemctl", "status", "demo").stdout)

    host.ok("systemctl", "daemon-reload")
    assert host.show("demo", "NeedDaemonReload") == "no"
    restart = host.run("systemctl", "restart", "demo")
    assert (restart.returncode, restart.stderr) == (0, "")
    assert cmdline(int(host.show("demo", "MainPID")))[2:] == ["--mode", "new"]


def test_second_execstart_in_dropin_is_a_bad_setting(host: Host) -> None:
    host.write("/lib/systemd/system/demo.service", DEMO)
    host.write("/etc/systemd/system/demo.service.d/nvidia.conf",
               "[Service]\nExecStart=/usr/local/bin/testd --mode nvidia\n")
    host.ok("systemctl", "daemon-reload")

    restart = host.run("systemctl", "restart", "demo.service")
    assert restart.returncode == 1
    assert restart.stderr == ("Failed to restart demo.service: Unit demo.service has a bad unit file setting.\n"
                              "See system logs and 'systemctl status demo.service' for details.\n")
    status = host.run("systemctl", "status", "demo")
    assert status.returncode == 3
    assert "     Loaded: bad-setting (Reason: Unit demo.service has a bad unit file setting.)\n" in status.stdout
    assert ("systemd[1]: demo.service: Service has more than one ExecStart= setting, which is only allowed for "
            "Type=oneshot services. Refusing.") in status.stdout
    assert host.show("demo", "LoadState") == "bad-setting"


def test_dropin_syntax_errors_are_logged_and_the_rest_of_that_file_skipped(host: Host) -> None:
    """systemd ignores a drop-in's parse error: the lines from the bad one on are not applied."""
    host.write("/lib/systemd/system/demo.service", DEMO)
    host.write("/etc/systemd/system/demo.service.d/a.conf", "[Service]\nExecStart /usr/local/bin/testd\nFoo=bar\n")
    host.write("/etc/systemd/system/demo.service.d/b.conf",
               "[Service\nExecStart=\nExecStart=/usr/local/bin/testd --mode broken\n")
    host.ok("systemctl", "daemon-reload")
    host.ok("systemctl", "restart", "demo")
    assert cmdline(int(host.show("demo", "MainPID")))[2:] == ["--mode", "one"]
    journal = host.ok("journalctl", "-u", "demo")
    assert "systemd[1]: /etc/systemd/system/demo.service.d/a.conf:2: Missing '=', ignoring line.\n" in journal
    assert ("systemd[1]: /etc/systemd/system/demo.service.d/a.conf:3: Unknown key name 'Foo' in section 'Service', "
            "ignoring.\n") in journal
    assert "systemd[1]: /etc/systemd/system/demo.service.d/b.conf:1: Invalid section header '[Service'\n" in journal


def test_refused_fragment_settings(host: Host) -> None:
    host.write("/lib/systemd/system/rel.service", "[Service]\nExecStart=bin/testd\n")
    host.write("/lib/systemd/system/header.service", "[Service\nExecStart=/usr/local/bin/testd\n")
    host.write("/lib/systemd/system/quote.service", '[Service]\nExecStart=/usr/local/bin/testd "unbalanced\n')
    host.ok("systemctl", "daemon-reload")

    start = host.run("systemctl", "start", "rel")
    assert start.returncode == 1
    assert start.stderr.startswith("Failed to start rel.service: Unit rel.service has a bad unit file setting.\n")
    assert ("/lib/systemd/system/rel.service:2: Neither a valid executable name nor an absolute path: bin/testd"
            in host.ok("journalctl", "-u", "rel"))
    start = host.run("systemctl", "start", "header")
    assert (start.returncode, start.stderr) == (1, (
        "Failed to start header.service: Unit header.service failed to load properly, please adjust/correct and "
        "reload service manager: Bad message\nSee system logs and 'systemctl status header.service' for details.\n"))
    assert host.show("quote", "LoadState") == "bad-setting"
    assert ('quote.service:2: Unbalanced quoting, ignoring: "/usr/local/bin/testd "unbalanced"'
            in host.ok("journalctl", "-u", "quote"))


def test_failing_service_fails_its_job(host: Host) -> None:
    host.write("/lib/systemd/system/broken.service",
               "[Unit]\nDescription=Broken\n\n[Service]\nType=notify\nExecStart=/usr/local/bin/testd --fail 3\n")
    start = host.run("systemctl", "start", "broken")
    assert (start.returncode, start.stderr) == (1, JOB_FAILED.format("broken.service"))
    assert host.run("systemctl", "is-active", "broken").stdout == "failed\n"
    assert host.run("systemctl", "is-active", "broken").returncode == 3
    assert host.run("systemctl", "is-failed", "broken").returncode == 0
    status = host.run("systemctl", "status", "broken")
    assert status.returncode == 3
    assert status.stdout.startswith("\u00d7 broken.service - Broken\n")
    assert "     Active: failed (Result: exit-code) since " in status.stdout
    assert "(code=exited, status=3/NOTIMPLEMENTED)" in status.stdout
    assert "testd: boom" in status.stdout
    assert "broken.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED" in status.stdout
    assert "Failed to start broken.service - Broken." in status.stdout
    assert host.show("broken", "ExecMainStatus") == "3"
    assert host.show("broken", "Result") == "exit-code"


def test_missing_executable_and_unknown_units(host: Host) -> None:
    host.write("/lib/systemd/system/ghost.service", "[Service]\nType=exec\nExecStart=/usr/bin/ghostd\n")
    start = host.run("systemctl", "start", "ghost")
    assert (start.returncode, start.stderr) == (1, JOB_FAILED.format("ghost.service"))
    assert "ghost.service: Failed to locate executable /usr/bin/ghostd: No such file or directory" in host.ok(
        "journalctl", "-u", "ghost")
    assert host.show("ghost", "ExecMainStatus") == "203"

    start = host.run("systemctl", "start", "nope")
    assert (start.returncode, start.stderr) == (5, "Failed to start nope.service: Unit nope.service not found.\n")
    stop = host.run("systemctl", "stop", "nope")
    assert (stop.returncode, stop.stderr) == (5, "Failed to stop nope.service: Unit nope.service not loaded.\n")
    status = host.run("systemctl", "status", "nope")
    assert (status.returncode, status.stderr) == (4, "Unit nope.service could not be found.\n")
    assert (host.run("systemctl", "is-active", "nope").stdout, host.run("systemctl", "is-active", "nope").returncode) \
        == ("inactive\n", 3)
    enabled = host.run("systemctl", "is-enabled", "nope")
    assert (enabled.returncode, enabled.stderr) == (
        1, "Failed to get unit file state for nope.service: No such file or directory\n")
    assert host.run("systemctl", "frobnicate", "x").stderr == "Unknown command verb frobnicate.\n"
    host.write("/lib/systemd/system/needy.service", "[Unit]\nRequires=absent.socket\n[Service]\nExecStart=/bin/true\n")
    needy = host.run("systemctl", "start", "needy")
    assert (needy.returncode, needy.stderr) == (5, "Failed to start needy.service: Unit absent.socket not found.\n")


def test_a_main_process_that_dies_later_shows_failed(host: Host) -> None:
    host.write("/lib/systemd/system/demo.service", DEMO)
    host.ok("systemctl", "start", "demo")
    pid = int(host.show("demo", "MainPID"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while host.run("systemctl", "is-active", "demo").stdout != "failed\n":
        assert time.monotonic() < deadline, "the unit never showed the death of its main process"
        time.sleep(0.02)
    status = host.run("systemctl", "status", "demo").stdout
    assert "     Active: failed (Result: signal) since " in status
    assert f"   Main PID: {pid} (code=killed, status=9/KILL)" in status


def test_enable_and_lab_boot(host: Host) -> None:
    host.write("/lib/systemd/system/demo.service", DEMO)
    host.write("/lib/systemd/system/broken.service",
               "[Service]\nType=notify\nExecStart=/usr/local/bin/testd --fail 1\n\n"
               "[Install]\nWantedBy=multi-user.target\n")
    enable = host.run("systemctl", "enable", "demo", "broken")
    assert enable.returncode == 0
    assert enable.stderr == (
        "Created symlink /etc/systemd/system/multi-user.target.wants/demo.service \u2192 "
        "/lib/systemd/system/demo.service.\n"
        "Created symlink /etc/systemd/system/multi-user.target.wants/broken.service \u2192 "
        "/lib/systemd/system/broken.service.\n")
    assert host.ok("systemctl", "is-enabled", "demo") == "enabled\n"
    assert host.run("systemctl", "is-active", "demo").stdout == "inactive\n"  # enabling starts nothing

    boot = host.run("systemctl", "--lab-boot")
    assert boot.returncode == 0, boot.stderr
    assert host.ok("systemctl", "is-active", "demo") == "active\n"
    assert host.run("systemctl", "is-active", "broken").stdout == "failed\n"
    assert "demo.service" in host.ok("systemctl", "list-units", "--type=service")

    disable = host.run("systemctl", "disable", "--now", "demo")
    assert disable.stderr == 'Removed "/etc/systemd/system/multi-user.target.wants/demo.service".\n'
    assert host.run("systemctl", "is-enabled", "demo").stdout == "disabled\n"
    assert host.run("systemctl", "is-active", "demo").stdout == "inactive\n"


def test_oneshot_environment_files_and_prefixes(host: Host) -> None:
    host.write("/etc/default/demo", "# defaults\nGREETING='from file'\nexport_me=1\n")
    host.write("/usr/local/bin/record", "#!/bin/sh\necho \"$@\" >> \"$BOTLAB_HOST_ROOT/tmp/record\"\n", 0o755)
    host.path("/tmp").mkdir()
    host.write("/lib/systemd/system/once.service",
               "[Service]\nType=oneshot\nRemainAfterExit=yes\nEnvironmentFile=-/etc/default/missing\n"
               "EnvironmentFile=/etc/default/demo\nExecStartPre=-/usr/bin/not-there\n"
               "ExecStart=/usr/local/bin/record first ${GREETING}\nExecStart=/usr/local/bin/record second $GREETING\n"
               "ExecStart=:/usr/local/bin/record third ${GREETING}\n")
    host.ok("systemctl", "start", "once")
    assert host.read("/tmp/record") == "first from file\nsecond from file\nthird ${GREETING}\n"
    assert host.ok("systemctl", "show", "-p", "ActiveState,SubState", "once") == "ActiveState=active\nSubState=exited\n"
    assert len(host.show("once", "ExecStart").splitlines()) == 3

    host.write("/lib/systemd/system/noenv.service", "[Service]\nType=oneshot\nEnvironmentFile=/etc/nothing\n"
               "ExecStart=/usr/local/bin/record x\n")
    start = host.run("systemctl", "start", "noenv")
    assert start.returncode == 1
    assert start.stderr.startswith("Job for noenv.service failed because of unavailable resources or another system "
                                   "error.\n")


def test_concurrent_systemctl_calls(host: Host) -> None:
    for name in ("a", "b", "c"):
        host.write(f"/lib/systemd/system/{name}.service", DEMO)
    procs = [subprocess.Popen([str(host.root / "usr/bin/systemctl"), "start", name], env=host.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("a", "b", "c")]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]
    for proc in procs:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    pids = {host.show(name, "MainPID") for name in ("a", "b", "c")}
    assert len(pids) == 3 and "0" not in pids
