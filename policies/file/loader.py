"""Load a policy file: read YAML safely, substitute ``${ENV_VAR}``, validate, listing every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.file.access import access_problems
from policies.file.document import PolicyFile
from policies.file.environment import substitute
from policies.file.problems import PolicyFileError, validation_problems
from policies.file.secrets import literal_secret_problems
from policies.file.workspaces import workspace_problems

MAX_FILE_BYTES = 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys and refuses aliases.

    PyYAML keeps the last of two equal keys silently, which would let a reviewer read one grant while
    the server applies another. Aliases are refused because a few nested ones expand exponentially.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.problems: list[str] = []

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not supported in policy files", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key; construct_mapping below reports it
            if duplicate:
                self.problems.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def parse_yaml(text: str) -> tuple[Any, list[str]]:
    """The document in ``text`` and any duplicate-key problems; raises PolicyFileError if unreadable."""
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PolicyFileError([f"not valid YAML: {exc}"]) from exc
    finally:
        loader.dispose()
    return data, loader.problems


def policy_from_data(raw: Any, environ: Mapping[str, str] | None = None) -> PolicyFile:
    """Validate already-parsed data as a policy file; raises PolicyFileError listing every problem."""
    environ = os.environ if environ is None else environ
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyFileError(["(top level): must be a mapping"])
    problems = literal_secret_problems(PolicyFile, raw)
    data, missing = substitute(raw, environ)
    problems.extend(missing)
    try:
        policy = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(problems + validation_problems(exc)) from None
    problems.extend(access_problems(policy.access))
    problems.extend(workspace_problems(policy.workspaces, policy.workspace_templates))
    if problems:
        raise PolicyFileError(problems)
    return policy


def load_policy_text(text: str, environ: Mapping[str, str] | None = None) -> PolicyFile:
    """Parse and validate policy-file YAML given as text."""
    data, problems = parse_yaml(text)
    try:
        policy = policy_from_data(data, environ)
    except PolicyFileError as exc:
        raise PolicyFileError(problems + exc.problems) from None
    if problems:
        raise PolicyFileError(problems)
    return policy


def load_policy_file(path: str | Path, environ: Mapping[str, str] | None = None) -> PolicyFile:
    """Read, parse and validate a policy file, listing every problem found."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyFileError([f"cannot read the file: {exc.strerror or exc}"]) from None
    if len(content) > MAX_FILE_BYTES:
        raise PolicyFileError([f"the file is larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFileError(["the file is not UTF-8 text"]) from None
    return load_policy_text(text, environ)
