"""`ksi-multi sandbox ...`: the virtual HPC cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ksi_multi.errors import KsiError


def _friendly(fn):
    from ksi_multi.cli import friendly_errors

    return friendly_errors(fn)


@click.group()
def sandbox() -> None:
    """A virtual HPC cluster on this machine (root): login host, N compute hosts, real Slurm."""


name_option = click.option("--name", default="ksi", show_default=True, help="sandbox name")
wheel_option = click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                            help="ksi-multi wheel the sandbox user installs (default: built from this checkout)")


@sandbox.command()
@click.option("-N", "--nodes", type=int, default=4, show_default=True, help="compute hosts")
@click.option("--subnet", default="10.77.0.0/24", show_default=True, help="addresses of the virtual hosts")
@click.option("--mtu", type=int, default=1500, show_default=True, help="MTU of the virtual cluster network")
@name_option
@wheel_option
@_friendly
def up(nodes: int, subnet: str, mtu: int, name: str, wheel: Path | None) -> None:
    """Start the sandbox (builds and caches its Debian userland the first time)."""
    from ksi_multi.sandbox.cluster import Sandbox
    from ksi_multi.sandbox.plan import SandboxPlan

    Sandbox(name).up(SandboxPlan(name=name, nodes=nodes, subnet=subnet, mtu=mtu), echo=click.echo, wheel=wheel)
    click.echo("try: ksi-multi sandbox shell -- sinfo")


@sandbox.command()
@name_option
@_friendly
def down(name: str) -> None:
    """Stop the sandbox and remove everything it made."""
    from ksi_multi.sandbox.cluster import Sandbox

    box = Sandbox(name)
    box.down(echo=click.echo)
    left = box.leftovers()
    if left:
        raise KsiError(f"sandbox '{name}' left: {'; '.join(left)}", "run `ksi-multi sandbox down` again")


@sandbox.command()
@name_option
@_friendly
def status(name: str) -> None:
    """Show the sandbox's hosts and Slurm's view of them."""
    from ksi_multi.sandbox.cluster import Sandbox

    box = Sandbox(name)
    plan = box.plan()
    for h in plan.hosts:
        try:
            state = f"running (pid {box.pid1(h.name)})"
        except KsiError:
            state = "NOT RUNNING"
        click.echo(f"{h.name:<8} {h.address:<15} {h.role:<8} {state}")
    box.exec("login", ["sinfo", "--Node", "--long"], root=True)


@sandbox.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--node", "host", default="login", show_default=True, help="host to run on")
@click.option("--root", is_flag=True, help="run as root instead of the sandbox user")
@name_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_friendly
def shell(host: str, root: bool, name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (joined like ssh does) on a host as the sandbox user; no COMMAND: a login shell."""
    from ksi_multi.sandbox.cluster import Sandbox, require_root

    require_root("shell")
    sys.exit(Sandbox(name).exec(host, " ".join(command), root=root).returncode)


@sandbox.command()
@click.option("-N", "--nodes", type=int, default=4, show_default=True, help="compute hosts")
@name_option
@wheel_option
@_friendly
def demo(nodes: int, name: str, wheel: Path | None) -> None:
    """Sandbox up (if needed), build the images, start a cluster job as the sandbox user, check it, summarise."""
    from ksi_multi.cli import default_cache
    from ksi_multi.sandbox.cluster import Sandbox, require_root
    from ksi_multi.sandbox.demo import run_demo

    require_root("demo")
    run_demo(Sandbox(name), nodes, default_cache(), echo=click.echo, wheel=wheel)
