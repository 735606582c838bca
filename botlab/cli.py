"""The `botlab` command line: parse flags, call botlab.app, render results, map exit codes.

No logic lives here, and nothing heavy is imported at module level: `botlab --help` must
stay fast, so the core and the clients load inside the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click

from botlab import __version__
from botlab.errors import BotlabError, ExitStatus, InputError

if TYPE_CHECKING:
    from botlab.app import Environment
    from botlab.inventory import Inventory
    from botlab.pipeline import RunResult
    from botlab.report import Reporter

EXIT_CODES = """\b
Exit codes:
  0  done
  1  a stage failed, or the state store failed mid-run (fix the cause; `botlab up` resumes it)
  2  bad input or usage, or an unusable state folder (nothing was touched)
  3  another run holds the lab's lock (`botlab unlock --yes` if its holder is gone)"""


@dataclass
class Options:
    env: Environment
    inventory: str | None
    verbose: bool
    output: str

    @property
    def json(self) -> bool:
        return self.output == "json"

    def load(self) -> Inventory:
        from botlab import app

        return app.load(self.env, self.inventory)

    def reporter(self) -> Reporter:
        from botlab.report import PlainReporter, RichReporter, SilentReporter

        if self.json:
            return SilentReporter()
        if self.env.interactive:
            return RichReporter(self.verbose)
        return PlainReporter(self.env.stderr, self.verbose)

    def emit(self, text: str, doc: Any) -> None:
        from botlab.sanitize import lines
        from botlab.secrets import redact
        from botlab.views import to_json

        click.echo(redact(to_json(doc)) if self.json else lines(redact(text)), file=self.env.stdout)


def _exit(status: ExitStatus) -> NoReturn:
    raise SystemExit(int(status))


pass_options = click.make_pass_decorator(Options)


INVENTORY_HELP = "Inventory file or its folder (default: $BOTLAB_INVENTORY, else the only inventory/*/lab.yaml here)."
VERBOSE_HELP = "Show unchanged items and debug logs."
OUTPUT_HELP = "json prints one JSON document and no progress."
OUTPUTS = click.Choice(["text", "json"])


def _late_option(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """Store a global option given after the subcommand, as kubectl and juju users type it."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        opts = ctx.find_object(Options)
        if opts is not None:
            setattr(opts, name, value)

    return store


def global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-i, -v and -o/--output, also accepted after the subcommand (`botlab status -o json`)."""
    for option in (
        click.option("-i", "--inventory", metavar="PATH", default=None, expose_value=False,
                     callback=_late_option("inventory"), help=INVENTORY_HELP),
        click.option("-v", "--verbose", is_flag=True, default=False, expose_value=False,
                     callback=_late_option("verbose"), help=VERBOSE_HELP),
        click.option("-o", "--output", type=OUTPUTS, default=None, expose_value=False,
                     callback=_late_option("output"), help=OUTPUT_HELP),
    ):
        command = option(command)
    return command


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-i", "--inventory", metavar="PATH", help=INVENTORY_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.option("-o", "--output", type=OUTPUTS, default="text", show_default=True, help=OUTPUT_HELP)
@click.version_option(__version__, prog_name="botlab")
@click.pass_context
def cli(ctx: click.Context, inventory: str | None, verbose: bool, output: str) -> None:
    """Provision a GPU machine-learning lab on bare metal from one inventory.

    Stages, in order: enlist, kubernetes, gpu, storage, loadbalancer, kubeflow.
    Each is checkpointed: `botlab up` resumes where it stopped and skips finished work
    whose inputs did not change.
    """
    env = ctx.obj
    if env is None:
        from botlab.app import Environment

        env = Environment()
    ctx.obj = Options(env, inventory, verbose, output)


@cli.command()
@global_options
@pass_options
def validate(opts: Options) -> None:
    """Check the inventory: schema, cross-references, files. Touches nothing."""
    inv = opts.load()
    opts.emit(
        f"{inv.path}: ok (lab {inv.name}, {len(inv.machines)} machines)",
        {"ok": True, "inventory": str(inv.path), "lab": inv.name, "machines": len(inv.machines)},
    )


@cli.command()
@global_options
@pass_options
def fetch(opts: Options) -> None:
    """Download the pinned upstream files the inventory needs into .botlab/artifacts/ and check
    their sha256 (copy that folder to a site without internet). Already cached files are checked,
    not downloaded again."""
    from botlab import artifacts, views

    inv = opts.load()
    cache = artifacts.cache_for(inv)
    done = [cache.fetch(a) for a in artifacts.needed(inv)]
    rows = [[f.artifact.name, f.action, f.artifact.sha256[:16] + "...", f.artifact.url] for f in done]
    text = views.table(rows, ["artifact", "action", "sha256", "from"]) if rows else "nothing to fetch"
    opts.emit(f"{text}\ncache: {cache.folder}", {
        "cache": str(cache.folder),
        "artifacts": [{"name": f.artifact.name, "action": f.action, "sha256": f.artifact.sha256,
                       "url": f.artifact.url, "path": str(f.path)} for f in done]})


REMOVE_OPTION = click.option(
    "--remove", "remove", metavar="HOST", multiple=True,
    help="HOST left the inventory but is still deployed: untag and forget it anyway (repeatable).")


@cli.command()
@global_options
@click.argument("stage", required=False)
@click.option("--out", "out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Save the plan for `botlab up --plan FILE` (review it, then run exactly it).")
@REMOVE_OPTION
@pass_options
def plan(opts: Options, stage: str | None, out: str | None, remove: tuple[str, ...]) -> None:
    """Show what each stage (through STAGE) would change now, with reasons. Changes nothing."""
    from pathlib import Path

    from botlab import app, views

    target = Path(opts.env.cwd, out) if out else None
    plans = app.plan(opts.env, opts.load(), stage, target, remove)
    text = views.plan_text(plans, opts.verbose)
    if target is not None:
        text += f"\nSaved to {target}; `botlab up --plan {target}` runs exactly this plan."
    opts.emit(text, views.plan_json(plans, target))


def _run(opts: Options, command: str, work: Callable[[Reporter], RunResult]) -> None:
    """Run `work` with a progress reporter, render its result, exit 1 if a stage failed."""
    from botlab import views

    reporter = opts.reporter()
    try:
        result = work(reporter)
    finally:
        reporter.close()
    opts.emit(views.run_text(result, command), views.run_json(result))
    if result.refused is not None:
        _exit(ExitStatus.BAD_INPUT)
    if not result.ok:
        _exit(ExitStatus.STAGE_FAILED)


@cli.command()
@global_options
@click.argument("stage", required=False)
@click.option("--from", "from_stage", metavar="STAGE", help="Start at STAGE (earlier ones must be done).")
@click.option("--only", metavar="STAGE", help="Run only STAGE (earlier ones must be done).")
@click.option("--force", is_flag=True, help="Plan, apply and verify even stages that are done.")
@click.option("--plan", "plan_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Execute exactly the plan `botlab plan --out FILE` saved; refused (exit 2) if the"
              " inventory or the world changed since.")
@REMOVE_OPTION
@pass_options
def up(opts: Options, stage: str | None, from_stage: str | None, only: str | None, force: bool,
       plan_file: str | None, remove: tuple[str, ...]) -> None:
    """Run the stages through STAGE (all by default), resuming where the last run stopped."""
    from pathlib import Path

    from botlab import app

    inv = opts.load()
    saved = Path(opts.env.cwd, plan_file) if plan_file else None
    _run(opts, "up", lambda reporter: app.up(opts.env, inv, reporter, target=stage, from_stage=from_stage,
                                             only=only, force=force, plan_file=saved, remove=remove))


@cli.command()
@global_options
@pass_options
def status(opts: Options) -> None:
    """Show each stage's status, when it ran, how long it took, and per-machine progress."""
    from botlab import app, views

    view = app.status(opts.env, opts.load())
    opts.emit(views.status_text(view), views.status_json(view))


def _confirm(opts: Options, yes: bool, what: str) -> None:
    from botlab import app

    app.require_yes(
        yes,
        opts.env.interactive and sys.stdin.isatty(),
        lambda: click.confirm(f"{what}?", default=False, err=True),
        what,
    )


@cli.command()
@global_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def down(opts: Options, yes: bool) -> None:
    """Tear the lab down, stages in reverse order."""
    from botlab import app

    inv = opts.load()
    _confirm(opts, yes, f"Tear down lab '{inv.name}'")
    _run(opts, "down", lambda reporter: app.down(opts.env, inv, reporter))


@cli.command()
@global_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def rebuild(opts: Options, yes: bool) -> None:
    """Tear the lab down, then build it again from the inventory."""
    from botlab import app

    inv = opts.load()
    _confirm(opts, yes, f"Rebuild lab '{inv.name}' (everything is torn down first)")
    _run(opts, "rebuild", lambda reporter: app.rebuild(opts.env, inv, reporter))


@cli.command()
@global_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def unlock(opts: Options, yes: bool) -> None:
    """Release the lab's lock in MAAS left by a run that is gone (its machine crashed).

    `up`, `down` and `rebuild` hold the lab's lock (MAAS tag `<lab>_lock`) from any folder;
    a run whose holder is gone from another host cannot be proven dead, so it stays locked
    (exit 3) until this removes it. A holder still running on this host is not removed."""
    from botlab import app
    from botlab.lablock import Holder

    inv = opts.load()
    _confirm(opts, yes, f"Remove the lock of lab '{inv.name}' (make sure no run holds it)")
    was = app.unlock(opts.env, inv)
    if was is None:
        text = f"lab '{inv.name}' was not locked"
    elif isinstance(was, Holder):
        text = f"released lab '{inv.name}''s lock, held by {was.describe()}"
    else:
        text = f"released lab '{inv.name}''s lock ({was[:80]!r})"
    opts.emit(text, {"lab": inv.name, "was_locked": was is not None,
                     "holder": was.describe() if isinstance(was, Holder) else was})


@cli.command()
@global_options
@click.argument("stage", required=False)
@pass_options
def logs(opts: Options, stage: str | None) -> None:
    """Show the events of the last run (of STAGE, if given)."""
    from botlab import app, views

    events = app.logs(opts.env, opts.load(), stage)
    opts.emit(views.events_text(events), views.events_json(events))


@cli.command()
@global_options
@click.argument("stage")
@pass_options
def render(opts: Options, stage: str) -> None:
    """Print what STAGE would hand to its system (kubernetes: the Juju bundle). Touches nothing."""
    from botlab import app

    rendered = app.render(opts.env, opts.load(), stage)
    opts.emit(rendered.text.rstrip("\n"), {"stage": stage, rendered.kind: rendered.text})


@cli.group()
def lab() -> None:
    """The virtual lab: emulated MAAS and machines on loopback, for demos, rehearsals and CI."""


LAB_DIR = click.option("--dir", "lab_dir", default="lab", show_default=True,
                       type=click.Path(file_okay=False), help="Folder of the lab.")


@lab.command("start")
@global_options
@LAB_DIR
@click.option("--machines", default=5, show_default=True, type=click.IntRange(1, 2000))
@click.option("--gpus", default=2, show_default=True, type=click.IntRange(0, 2000),
              help="How many of the machines have GPUs (the last ones).")
@click.option("--unenlisted", type=click.IntRange(0, 2000),
              help="How many machines MAAS does not know yet (default: half).")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False, exists=True),
              help="A lab spec YAML instead of --machines/--gpus.")
@click.option("--name", default="lab", show_default=True, help="The lab name in the inventory.")
@click.option("--commissioning-s", type=click.FloatRange(0), help="Modelled commissioning time.")
@click.option("--deploy-s", type=click.FloatRange(0), help="Modelled deployment time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--maas-port", default=0, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--hosts/--no-hosts", default=None,
              help="Back deployed machines with SSH hosts in network namespaces (default: when root).")
@pass_options
def lab_start(opts: Options, lab_dir: str, machines: int, gpus: int, unenlisted: int | None,
              spec_file: str | None, name: str, commissioning_s: float | None,
              deploy_s: float | None, seed: int, maas_port: int, hosts: bool | None) -> None:
    """Start a virtual lab in the background and write DIR/inventory/lab.yaml for it."""
    from pathlib import Path

    from botlab.lab import control, specs

    if gpus > machines:
        raise click.BadParameter("cannot exceed --machines", param_hint="--gpus")
    doc = specs.spec_document(
        Path(spec_file) if spec_file else None, machines=machines, gpus=gpus,
        unenlisted=unenlisted, commissioning_s=commissioning_s, deploy_s=deploy_s, seed=seed,
    )
    info = control.start(Path(opts.env.cwd, lab_dir), doc, name=name, maas_port=maas_port, hosts=hosts)
    inv_dir = info.inventory.parent
    opts.emit(
        f"virtual lab '{info.name}' running (pid {info.pid}) in {info.dir}\n"
        f"  MAAS:      {info.maas_url}\n"
        f"  Juju:      {info.juju_endpoint} (JUJU_DATA={info.juju_data})\n"
        f"  hosts:     {'SSH servers in namespaces, booted on deploy' if info.hosts else 'none (records only)'}\n"
        f"  inventory: {info.inventory}\n"
        f"try:  botlab -i {inv_dir} plan\n"
        f"      botlab -i {inv_dir} up enlist\n"
        f"stop: botlab lab stop --dir {info.dir}",
        {"pid": info.pid, "dir": str(info.dir), "maas_url": info.maas_url,
         "juju_endpoint": info.juju_endpoint, "juju_data": info.juju_data,
         "inventory": str(info.inventory), "name": info.name, "hosts": info.hosts},
    )


@lab.command("stop")
@global_options
@LAB_DIR
@pass_options
def lab_stop(opts: Options, lab_dir: str) -> None:
    """Stop the virtual lab (its state is lost; the inventory and keys stay)."""
    from pathlib import Path

    from botlab.lab import control

    info = control.stop(Path(opts.env.cwd, lab_dir))
    text = f"stopped the lab in {info.dir} (pid {info.pid})" if info else "no lab running there"
    opts.emit(text, {"stopped": info is not None})


@lab.command("status")
@global_options
@LAB_DIR
@pass_options
def lab_status(opts: Options, lab_dir: str) -> None:
    """Show whether the lab runs, where, and its machines' MAAS states."""
    from pathlib import Path

    from botlab import views
    from botlab.lab import control

    info = control.read_info(Path(opts.env.cwd, lab_dir).resolve())
    if info is None or not info.alive:
        opts.emit("no lab running in " + lab_dir, {"running": False})
        return
    state = control.read_state(info)
    states = control.machine_states(state)
    hosts = {h["hostname"]: h for h in control.hosts_state(state)}
    rows = [[h, s, hosts[h]["address"] if h in hosts else "-"] for h, s in sorted(states.items())]
    opts.emit(
        f"lab '{info.name}' running (pid {info.pid}); MAAS at {info.maas_url},"
        f" Juju controller at {info.juju_endpoint}\n"
        + views.table(rows, ["machine", "MAAS status", "host (SSH)"]),
        {"running": True, "pid": info.pid, "maas_url": info.maas_url,
         "juju_endpoint": info.juju_endpoint, "machines": states,
         "hosts": {h: {"address": d["address"], "host_keys": d["host_keys"], "gpus": d.get("gpus", 0)}
                   for h, d in hosts.items()}},
    )


def _report_error(opts: Options | None, exc: BotlabError, stderr: Any) -> None:
    from botlab.sanitize import one_line
    from botlab.secrets import redact
    from botlab.views import to_json

    lines = [str(p) for p in exc.problems] if isinstance(exc, InputError) else [str(exc)]
    lines = [one_line(redact(line)) for line in lines]
    for line in lines:
        click.echo(f"botlab: error: {line}" if not isinstance(exc, InputError) else line, file=stderr)
    if opts is not None and opts.json:
        click.echo(to_json({"error": lines, "exit_status": int(exc.exit_status)}), file=opts.env.stdout)


COMPLETE_VAR = "_BOTLAB_COMPLETE"


def _shell_complete(instruction: str, env: Environment | None) -> int:
    """Answer the shell's completion request (`_BOTLAB_COMPLETE=bash_source botlab` prints
    the script; `bash_complete` etc. answer one request), as click's own main() would.
    Every STAGE argument and option (`up STAGE`, `--from`, `--only`, ...) offers the stage
    names and `-i` completes paths; they are attached here, for this request only, so
    defining commands stays import-free and `botlab --help` fast."""
    from click.shell_completion import shell_complete

    from botlab.pipeline import STAGE_ORDER

    stages = click.Choice(STAGE_ORDER)
    typed: dict[click.Parameter, click.ParamType] = {}
    commands: list[click.Command] = [cli]
    while commands:
        command = commands.pop()
        if isinstance(command, click.Group):
            commands.extend(command.commands.values())
        for param in command.params:
            if param.name == "stage" or getattr(param, "metavar", None) == "STAGE":
                typed[param], param.type = param.type, stages
            elif param.name == "inventory":
                typed[param], param.type = param.type, click.Path()  # the shell completes paths
    try:
        return int(shell_complete(cli, {"obj": env}, "botlab", COMPLETE_VAR, instruction))
    finally:
        for param, kind in typed.items():
            param.type = kind


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Entry point: returns the exit status instead of raising it (tests call this)."""
    import os

    stderr = env.stderr if env is not None else sys.stderr
    ctx: click.Context | None = None
    try:
        instruction = os.environ.get(COMPLETE_VAR)  # click reads COMP_WORDS etc. from there too
        if instruction:
            return _shell_complete(instruction, env)
        ctx = cli.make_context("botlab", list(sys.argv[1:] if argv is None else argv), obj=env)
        with ctx:
            cli.invoke(ctx)
    except BotlabError as exc:
        opts = ctx.obj if ctx is not None and isinstance(ctx.obj, Options) else None
        _report_error(opts, exc, stderr)
        return int(exc.exit_status)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show(file=stderr)
        return int(ExitStatus.BAD_INPUT)
    except click.exceptions.Abort:
        click.echo("Aborted.", file=stderr)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        click.echo("interrupted; run `botlab up` to resume", file=stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
