"""Helpers shared by the sub-commands: the --config flag and loading it with clean errors."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, Settings, load_settings
from ..redact import register_secrets, secrets_in


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML config file (default: $WATCHDOG_CONFIG, else built-in defaults)",
    )


class ConfigExit(Exception):
    """Raised after the config problems were printed; main() turns it into exit code 2."""


def load_config(args: argparse.Namespace) -> Settings:
    """Load the config named by ``--config``; print one line per bad field and raise ConfigExit."""
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print("dialnexa-watchdog: invalid configuration:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        raise ConfigExit from None
    # every secret in the config is masked in whatever this command logs or prints
    register_secrets(*secrets_in(settings))
    return settings
