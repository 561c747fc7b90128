"""`darkroom asset put | list | delete`: the studio's own files that recipes name (a
watermark PNG), uploaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from darkroom.cli.connection import api_call, studio
from darkroom.cli.view import console, err


def put(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="What recipes call it: lowercase letters, digits, - and _.")
    ],
    file: Annotated[Path, typer.Argument(help="The PNG (a logo with transparency).")],
) -> None:
    """Upload a watermark PNG as a studio asset; replaces one of that name (its earlier
    versions are kept for the runs that used them)."""
    if not file.is_file():
        err.print(f"{file}: no such file" if not file.exists() else f"{file}: not a file")
        raise typer.Exit(2)
    client = studio(ctx)
    stored = api_call(lambda: client.put_asset(name, file))
    console.print(
        f"asset {stored['name']} stored ({stored['width']}x{stored['height']} px, "
        f"{stored['bytes']} bytes); a recipe names it as "
        f'"watermark": {{"asset": "{stored["name"]}"}}',
        markup=False,
    )


def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The studio's assets."""
    client = studio(ctx)
    found = api_call(client.assets)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    if not found:
        err.print("no assets yet: `darkroom asset put NAME FILE.png` uploads one")
        return
    for asset in found:
        console.print(f"{asset['name']}\t{asset['size']} bytes\t{asset['modified']}", markup=False)


def delete(ctx: typer.Context, name: str) -> None:
    """Delete a studio asset (jobs whose recipe names it are refused from then on)."""
    client = studio(ctx)
    api_call(lambda: client.delete_asset(name))
    err.print(f"asset {name} deleted")
