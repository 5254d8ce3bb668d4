"""YAML text parsed strictly, with one-line errors that name the source and line.

Shared by everything that reads a YAML file a person wrote (fleet.yaml, calendar overrides):
a key given twice in one mapping is an error (YAML itself keeps the last one silently), and
a syntax error says where and what to fix. Parsing text is pure; `read_user_file` is the
one place such a file is read, so a missing or unreadable one is said the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleetkit.core.errors import ConfigError


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in the same mapping."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same section — keep one",
                key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                             _mapping_without_duplicates)


def parse_yaml(text: str, source: str, loader: type[StrictLoader] = StrictLoader) -> Any:
    """The document in `text`; ConfigError "source line N: problem — fix" if it is bad."""
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        fix = "" if "—" in problem else " — fix the YAML syntax there"
        raise ConfigError(f"{source}{where}: {problem}{fix}") from None


def read_user_file(path: str | Path, what: str, setting: str) -> tuple[Path, str]:
    """The file a config setting names (`~` expanded) and its text; ConfigError in one line
    when it is missing or unreadable, naming `what` it is and the `setting` to fix."""
    file = Path(path).expanduser()
    try:
        return file, file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {file} not found: fix {setting} in the config, or create "
                          "the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {file}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
