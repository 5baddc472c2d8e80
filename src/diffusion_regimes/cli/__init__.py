"""Command-line interface: ``python -m diffusion_regimes <command>``.

Each workflow rule calls one command.  A rule passes its configuration section as a JSON ``--spec`` (the
validated, resolved config), plus its input and output paths; the command builds the typed section,
runs the experiment and writes outputs atomically with their provenance sidecars.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from diffusion_regimes.cli import data as _data
from diffusion_regimes.cli import gaussian_mixture, ideal
from diffusion_regimes.cli import train as _train
from diffusion_regimes.errors import PipelineError

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# One module per workflow stage; each adds its sub-commands.
COMMAND_GROUPS: tuple[Register, ...] = (
    _data.register,
    ideal.register,
    _train.register,
    gaussian_mixture.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-regimes", description="Dynamical regimes of diffusion models: pipeline commands"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def network_commands(parser: argparse.ArgumentParser | None = None) -> frozenset[str]:
    """Sub-commands that train or sample a neural network.

    A command marks itself with ``set_defaults(func=..., uses_network=True)`` in its ``register``; the
    workflow rule that calls it must then request ``gpu`` in its resources (tests/test_profiles.py), so
    that the SLURM profile sends it to a GPU partition.
    """
    parser = parser or build_parser()
    return frozenset(
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
        if sub.get_default("uses_network")
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        where = Path(exc.filename).parent if exc.filename else "an output folder"
        print(f"error: permission denied writing {exc.filename}: make {where} writable and re-run",
              file=sys.stderr)
        return 2
    return int(result or 0)
