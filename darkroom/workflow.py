"""The committed RAW pipeline ASL, for whoever deploys or runs it (CDK, the local cloud).

Only json and the standard library here: the stepfunctions SDK that authors the file
(workflows/raw_pipeline.py) drags in sagemaker v2, which no runtime may carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final

ASL_NAME: Final = "raw_pipeline.asl.json"
# Through the package rather than a path from this file, so an installed (non-editable)
# darkroom finds the copy shipped as workflows' package data.
ASL_PATH: Final[Path] = Path(str(resources.files("workflows").joinpath(ASL_NAME)))

# The same syntax CloudFormation's DefinitionSubstitutions use, so CDK can hand the
# template to Step Functions as is.
_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_template() -> str:
    """The ASL exactly as committed, ${Placeholders} and all."""
    return ASL_PATH.read_text(encoding="utf-8")


def placeholders(template: str) -> set[str]:
    """The ${Name} names the template uses."""
    return set(_PLACEHOLDER.findall(template))


def render_definition(substitutions: Mapping[str, str], *, template: str | None = None) -> str:
    """The template with every ${Name} replaced, ready for CreateStateMachine.

    Strict both ways: a placeholder left unfilled would reach Step Functions as a literal
    function name, and an unused substitution means caller and template have drifted.
    """
    text = load_template() if template is None else template
    used = placeholders(text)
    missing = sorted(used - substitutions.keys())
    unused = sorted(substitutions.keys() - used)
    if missing or unused:
        problems = []
        if missing:
            problems.append(f"placeholders without a value: {', '.join(missing)}")
        if unused:
            problems.append(f"substitutions the template does not use: {', '.join(unused)}")
        raise KeyError(f"{ASL_NAME}: {'; '.join(problems)}")
    # Placeholders sit inside JSON strings, so each value is escaped as a string body.
    return _PLACEHOLDER.sub(lambda m: json.dumps(substitutions[m.group(1)])[1:-1], text)
