"""`python -m pipeline evaluate`: accuracy and per-class table of an exported model."""

from __future__ import annotations

import sys

from components.console import UserError
from pipeline.cli.arguments import Exit


def add_to(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="accuracy and per-class table of an exported model on a test split")
    evaluate.add_argument("--model", required=True,
                          help="SavedModel dir, Trainer model artifact or pushed model dir")
    evaluate.add_argument("--data-dir", required=True,
                          help="CIFAR-10 directory or tarball holding a test batch")
    evaluate.add_argument("--cache-dir", default=None)
    evaluate.add_argument("--limit", type=int, help="first N images of the test batch")


def main(args, extra_args) -> int:
    from components.data import source as data_source
    from pipeline import evaluate

    if extra_args:
        print(f"error: unexpected arguments: {' '.join(extra_args)}", file=sys.stderr)
        return Exit.BAD_INPUT
    try:
        source = data_source.resolve(args.data_dir,
                                     args.cache_dir or data_source.DEFAULT_CACHE_DIR)
        evaluate.evaluate(args.model, source, limit=args.limit)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return Exit.BAD_INPUT
    return Exit.OK
