"""Command-line interface: ``python -m diffusion_regimes <command>``.

Each workflow rule calls one command.  A rule passes its configuration section as a JSON ``--spec`` (the
validated, resolved config), plus its input and output paths; the command builds the typed section,
runs the experiment and writes outputs atomically with their provenance sidecars.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from diffusion_regimes.cli import classifier, gaussian_mixture, memorisation, protocol, regimes, speciation
from diffusion_regimes.cli import data as _data
from diffusion_regimes.cli import ideal_models as _ideal_models
from diffusion_regimes.cli import train as _train
from diffusion_regimes.cli.common import JOB_SUMMARY
from diffusion_regimes.errors import PipelineError

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# One module per workflow stage; each adds its sub-commands.
COMMAND_GROUPS: tuple[Register, ...] = (
    _data.register,
    classifier.register,
    regimes.register,
    _train.register,
    gaussian_mixture.register,
    protocol.register,
    speciation.register,
    memorisation.register,
    _ideal_models.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-regimes", description="Dynamical regimes of diffusion models: pipeline commands"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def _commands_marked(mark: str, parser: argparse.ArgumentParser | None) -> frozenset[str]:
    """Names of the sub-commands whose parser sets the default ``mark`` to a true value."""
    parser = parser or build_parser()
    return frozenset(
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
        if sub.get_default(mark)
    )


def network_commands(parser: argparse.ArgumentParser | None = None) -> frozenset[str]:
    """Sub-commands that train or sample a neural network.

    A command marks itself with ``set_defaults(func=..., uses_network=True)`` in its ``register``; the
    workflow rule that calls it must then request ``gpu`` in its resources (tests/test_profiles.py), so
    that the SLURM profile sends it to a GPU partition.
    """
    return _commands_marked("uses_network", parser)


def gpu_capable_commands(parser: argparse.ArgumentParser | None = None) -> frozenset[str]:
    """Sub-commands without a network that still run their heavy arithmetic on ``--device``.

    Marked with ``set_defaults(..., gpu_capable=True)``; their rules may request ``gpu`` (from
    ``resources.<rule>.gpu``) where the problem size needs one, but need not.
    """
    return _commands_marked("gpu_capable", parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A command puts its headline numbers here (final loss, accuracy, Λ ± SE, t_S, pairs, ...); they
    # close the job's log in one line, so a log answers "what came out" without opening the tables.
    summary: dict = {}
    token = JOB_SUMMARY.set(summary)
    start = time.perf_counter()
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
    finally:
        JOB_SUMMARY.reset(token)
    closing = summary_line(args.command, summary, wall_seconds=time.perf_counter() - start)
    logging.getLogger("diffusion_regimes.cli").info("%s", closing)
    return int(result or 0)


def summary_line(command: str, summary: dict, *, wall_seconds: float) -> str:
    """``done <command>: key value, ..., wall N s`` with floats to 4 significant digits."""
    parts = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
             for key, value in summary.items()]
    return f"done {command}: " + ", ".join([*parts, f"wall {wall_seconds:.1f} s"])
