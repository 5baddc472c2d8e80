"""``protocol``: a config stack's effective value of every row of the authors' protocol, before a run."""

from __future__ import annotations

import argparse


def run_protocol(args: argparse.Namespace) -> int:
    from diffusion_regimes.protocol import load_config, markdown_table, report

    if args.markdown:
        print(markdown_table(load_config(args.configfile)))
        return 0
    text, undocumented = report(args.configfile)
    print(text)
    return 1 if undocumented else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "protocol",
        help="compare a config (stack) with the authors' protocol; exit 1 on an undocumented difference",
        description="Merges config/config.yaml and the --configfile overlays as Snakemake does, and prints "
                    "the effective value of every protocol row next to the authors' value.  Run it before "
                    "submitting the paper run: `python -m diffusion_regimes protocol --configfile "
                    "config/paper.yaml`.",
    )
    p.add_argument("--configfile", nargs="*", default=[], metavar="FILE",
                   help="overlays merged on config/config.yaml, in order (as snakemake --configfile)")
    p.add_argument("--markdown", action="store_true", help="print the protocol table of config/README.md")
    p.set_defaults(func=run_protocol)
