"""The command line: ``python -m training.finetune --base DIR --output DIR ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from training.finetune.params import FinetuneError, add_arguments, config_from
from training.finetune.run import finetune


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when the result is accepted, 1 when refused, 2 for bad input."""
    package_doc = sys.modules[__package__].__doc__  # training/finetune/__init__.py
    parser = argparse.ArgumentParser(
        prog="python -m training.finetune", description=package_doc.splitlines()[0]
    )
    add_arguments(parser, base_required=True)
    options = vars(parser.parse_args(argv))
    try:
        report = finetune(
            config_from(options, options["base"]), resume=options["resume"]
        )
    except FinetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if report["accepted"] else 1
