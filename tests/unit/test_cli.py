"""The command line: --version, and a help line for every command and option."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from ciba_gateway import __version__
from ciba_gateway.cli import _parser, main


def parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and every subcommand's parser below it, with their command names."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` prints ``ciba-gateway X.Y.Z`` and exits 0."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"ciba-gateway {__version__}\n"


def test_every_command_and_option_has_a_plain_help_line() -> None:
    """No command or option without help, and no reStructuredText backticks in any."""
    seen = 0
    for name, parser in parsers(_parser(), "ciba-gateway"):
        texts = [parser.description or ""]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{name} {choice.dest}: no help line"
                    texts.append(choice.help)
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help line"
            texts.append(action.help)
            seen += 1
        for text in texts:
            assert "`" not in text, f"{name}: backticks in {text!r}"
    assert seen > 20
