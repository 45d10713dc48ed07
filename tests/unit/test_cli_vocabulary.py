"""One CLI vocabulary: every command that lists or shows something prints a table (or text) by default and
JSON with --json; reference layers can be listed, loaded and dropped from the CLI like from the API."""

from __future__ import annotations

import typer.main

import terrawatch.cli  # noqa: F401 - registers every command group
from terrawatch.cli.root import app


def _commands(group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_list_show_and_status_commands_take_json():
    cmds = dict(_commands(typer.main.get_command(app)))
    readers = [n for n in cmds if n.split()[-1] in ("list", "show", "status")]
    assert {"keys list", "dlq list", "dlq show", "layers list", "stack status"} <= set(readers), readers
    for name in readers:
        opts = {o for p in cmds[name].params for o in getattr(p, "opts", [])}
        assert "--json" in opts, f"terrawatch {name} has no --json"


def test_layers_commands_cover_the_api():
    cmds = dict(_commands(typer.main.get_command(app)))
    assert {"layers list", "layers load", "layers drop"} <= set(cmds)
