"""Command-line flags made from the option declaration (``kmsgate.config.OPTIONS``), for every command that takes them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmsgate.config import CONFIG_FILE_ENV, OPTIONS, Option


def add_option_flags(parser: argparse.ArgumentParser, options: Sequence[Option] = OPTIONS) -> None:
    """One flag per option, grouped as declared; a flag not given leaves its attribute unset."""
    groups: dict[str, Any] = {"general": parser}
    for opt in options:
        group = groups.get(opt.group) or groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        text = f"{opt.help} [{opt.env}] (default: {opt.describe_default()})".replace("%", "%%")
        if opt.kind is bool:
            group.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=text)
        else:
            metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else opt.key.upper()
            group.add_argument(opt.flag, dest=opt.name, default=argparse.SUPPRESS, metavar=metavar, help=text)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help=f"TOML file of options (keys as `kmsgate config show` prints them) [{CONFIG_FILE_ENV}]; "
                        "flags win over the environment, which wins over the file")


def given_flags(args: argparse.Namespace, options: Sequence[Option] = OPTIONS) -> dict[str, object]:
    """The options given as flags: option name -> the flag's text (or a bool for on/off options)."""
    return {opt.name: getattr(args, opt.name) for opt in options if hasattr(args, opt.name)}
