"""Where the cloud commands find the API, and how its errors reach the user.

The connection options are the `darkroom` command's own, declared once on its callback.
They may also follow the command they are for (`darkroom status JOB --endpoint-url URL`),
as they always could: the group moves them in front before parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from darkroom.cli.view import err

if TYPE_CHECKING:
    from darkroom.cli.studio_client import StudioClient

# What runs `darkroom --help` imports nothing heavy: the API client (http, ssl), boto3 and
# the models are imported by the command that uses them, when it runs.

T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    api_url: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    stack: str = "darkroom"

    def client(self) -> StudioClient:
        """The API client, or exit 1 saying why the API cannot be found."""
        from darkroom.cli.studio_client import ApiTarget, NoApiConfigured, StudioClient

        try:
            target = ApiTarget.resolve(
                api_url=self.api_url,
                endpoint_url=self.endpoint_url,
                stack=self.stack,
                profile=self.profile,
                region=self.region,
            )
        except NoApiConfigured as exc:
            err.print(str(exc), style="red", markup=False)
            raise typer.Exit(2) from exc
        except Exception as exc:
            err.print(f"cannot find the darkroom API: {exc}", style="red", markup=False)
            raise typer.Exit(1) from exc
        return StudioClient.at(target)


def show_version(asked: bool) -> None:
    if asked:
        # importlib.metadata, not the package's modules: the version must come as fast as
        # the help does.
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"darkroom {version('darkroom')}")
        except PackageNotFoundError:
            print("darkroom (version unknown: not installed as a package)")
        raise typer.Exit()


def connect(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="DARKROOM_API_URL",
            help="The API's URL (a local cloud's ApiUrl, or a deployed stack's).",
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            envvar="DARKROOM_ENDPOINT_URL",
            help="A local cloud's AWS endpoint (from `darkroom local up`); its API is found there.",
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile (deployed stack).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    stack: Annotated[str, typer.Option("--stack", help="CloudFormation stack name.")] = "darkroom",
    _version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=show_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    # Resolved lazily: a share link, `demo` or `develop` never needs the API's address.
    ctx.obj = Connection(api_url, endpoint_url, profile, region, stack)


def studio(ctx: typer.Context) -> StudioClient:
    """The API client of a cloud command, from the connection options."""
    return (ctx.find_object(Connection) or Connection()).client()


def api_call(call: Callable[[], T]) -> T:
    """Run an API call; its error becomes a clear message and exit status 1."""
    from darkroom.api.client import ApiCallError, TransferError

    try:
        return call()
    except ApiCallError as exc:
        # The server's words are text: a file name or a recipe's "[red, green, blue]"
        # must not be read as rich markup.
        err.print(exc.message, style="red", markup=False, highlight=False)
        for problem in exc.details.get("files", [])[:20]:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    except (TransferError, TimeoutError, ValueError) as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from exc


class OptionsAnywhere(TyperGroup):
    """A group whose own valued options are accepted after the subcommand too."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        valued = {
            name
            for param in self.params
            if param.param_type_name == "option"
            and not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
            for name in param.opts
        }
        hoisted: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest += args[i:]
                break
            name, has_value, _ = arg.partition("=")
            if name in valued and (has_value or i + 1 < len(args)):
                taken = 1 if has_value else 2
                hoisted += args[i : i + taken]
                i += taken
                continue
            rest.append(arg)
            i += 1
        if not ctx.resilient_parsing:
            help_first(ctx, self, rest)
        # In order, so that of an option given twice the last one still wins.
        return super().parse_args(ctx, hoisted + rest)


def help_first(ctx: Any, group: Any, args: list[str]) -> None:
    """`darkroom [GROUP] COMMAND ... --help`: show the command's help, then exit, before
    the groups' own options are processed.

    Typer builds a pydantic validator for each parameter it processes, even one not
    given: going through `darkroom`'s options first would import pydantic, which costs
    more than all the rest of a command's help. Only when the command's own parser
    reads the help flag (not an option's value, nothing after `--`): the help is the
    very one the command would show, and the command's other options are not processed,
    as ever when its help is asked for."""
    if not set(ctx.help_option_names).intersection(args):
        return
    while args and not args[0].startswith("-"):
        name, args = args[0], args[1:]
        command = group.get_command(ctx, name)
        if command is None:
            return
        sub = command.context_class(command, info_name=name, parent=ctx)
        try:
            opts, rest, _ = command.make_parser(sub).parse_args(args=list(args))
        except Exception:  # a usage error: the ordinary parsing says which
            return
        option = command.get_help_option(sub)
        if option is not None and opts.get(option.name):
            command.make_context(name, list(args), parent=ctx)  # prints the help, exits
            return
        if not hasattr(command, "get_command"):
            return  # a command, not a group: no help asked of it
        ctx, group, args = sub, command, rest
