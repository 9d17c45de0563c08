"""The README's commands and the CLI agree: every documented command and option exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ringscope.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")


def _documented() -> list[tuple[str, list[str]]]:
    block = re.search(r"## Command line.*?```\n(.*?)```", README, re.S)
    assert block, "README has no 'Command line' block"
    out = []
    for line in block.group(1).splitlines():
        if line.startswith("ringscope "):
            words = line.split()
            command = words[1]
            if len(words) > 2 and re.fullmatch(r"[a-z]+", words[2]):  # a sub-command
                command += f" {words[2]}"
            out.append((command, re.findall(r"--[a-z][a-z-]*", line)))
    return out


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join(README.splitlines()[:15])
    assert "make run" in head and "make test" in head


@pytest.mark.parametrize(("command", "options"), _documented())
def test_documented_command_and_options_exist(command: str, options: list[str]) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    # rich may colour or wrap option names; compare on the plain text
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    for opt in options:
        assert opt in text, f"{command} --help does not mention {opt}"


def test_every_cli_command_is_documented() -> None:
    documented = {c for c, _ in _documented()}
    registered = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    for group in app.registered_groups:
        assert group.typer_instance is not None
        for c in group.typer_instance.registered_commands:
            registered.add(f"{group.name} {c.name}")
    assert registered <= documented | {"export"}, registered - documented


def test_design_commands_are_all_present() -> None:
    design = {"run", "generate", "load", "detect", "findings", "scores", "evaluate", "serve"}
    assert design <= {c for c, _ in _documented()}
