"""The product does not depend on its development tools: only the local cloud itself and
the CLI (whose `demo` and `local up` start it) import darkroom.local."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("darkroom", "tasks", "worker")
MAY_IMPORT_LOCAL = {("darkroom", "local"), ("darkroom", "cli")}


def imported_modules(source: str, package: Sequence[str]) -> Iterator[str]:
    """Every module the imports in `source` (a module of `package`) may name, relative
    imports resolved, imports inside functions included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            # `from darkroom import local` imports a module, not a name.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def is_local(module: str) -> bool:
    return module == "darkroom.local" or module.startswith("darkroom.local.")


def test_every_form_of_import_is_seen() -> None:
    source = (
        "import darkroom.local.cloud as c\n"
        "from darkroom import local\n"
        "from ..local import api_server\n"
        "def later():\n"
        "    from darkroom.local.lambda_runtime import LambdaRuntime\n"
    )
    found = set(filter(is_local, imported_modules(source, ["darkroom", "aws"])))
    assert found == {
        "darkroom.local.cloud",
        "darkroom.local",
        "darkroom.local.api_server",
        "darkroom.local.lambda_runtime",
        "darkroom.local.lambda_runtime.LambdaRuntime",
    }
    assert not any(map(is_local, imported_modules("import darkroom.localisation", ["x"])))


def test_only_the_local_cloud_and_the_cli_import_the_local_cloud() -> None:
    checked = 0
    offenders = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            checked += 1
            if relative.parts[:2] in MAY_IMPORT_LOCAL:
                continue
            package = relative.with_suffix("").parts[:-1]
            local = sorted({m for m in imported_modules(path.read_text(), package) if is_local(m)})
            if local:
                offenders.append(f"{relative}: {', '.join(local)}")
    assert checked > 30  # the walk found the tree
    assert not offenders, "\n".join(offenders)
