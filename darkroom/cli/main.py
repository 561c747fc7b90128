"""`darkroom`: run the pipeline locally, or drive a deployed stack through its API."""

from __future__ import annotations

import typer

from darkroom.cli import assets_cmd, jobs_cmd, local_cmd, shares_cmd, trace_cmd
from darkroom.cli.connection import OptionsAnywhere, connect
from darkroom.cli.develop_cmd import develop
from darkroom.cli.doctor_cmd import doctor
from darkroom.cli.thumbnail_cmd import thumbnail

app = typer.Typer(
    cls=OptionsAnywhere,
    no_args_is_help=True,
    help="darkroom: RAW post-production for studios.",
)
# --api-url, --endpoint-url, --profile, --region, --stack: for every cloud command.
app.callback()(connect)

# The cloud: a studio's jobs and its clients' share links, through the API.
cloud_command = app.command(
    epilog="Where the API is: --api-url, --endpoint-url, --profile, --region, --stack "
    "(see `darkroom --help`), before or after the command."
)
for command in (
    jobs_cmd.upload,
    jobs_cmd.status,
    jobs_cmd.watch,
    jobs_cmd.reprocess,
    jobs_cmd.delete,
    shares_cmd.share,
    shares_cmd.shares,
    shares_cmd.favourites,
    shares_cmd.download,
    trace_cmd.trace,
):
    cloud_command(command)
# After a deploy (--stack, --region), or against the local cloud (--endpoint-url).
app.command("doctor")(doctor)
asset_app = typer.Typer(
    no_args_is_help=True,
    help="The studio's assets that recipes name: a watermark PNG, uploaded once.",
)
asset_app.command("put")(assets_cmd.put)
asset_app.command("list")(assets_cmd.list_)
asset_app.command("delete")(assets_cmd.delete)
app.add_typer(asset_app, name="asset")

# This machine: the embedded local cloud.
app.command()(local_cmd.demo)
local_app = typer.Typer(no_args_is_help=True, help="The embedded local cloud.")
local_app.command("up")(local_cmd.local_up)
app.add_typer(local_app, name="local")
app.command("console")(local_cmd.open_console)

# This machine, no cloud: the worker's and the thumbnail Lambda's own code.
app.command("develop")(develop)
app.command("thumbnail")(thumbnail)
