"""A small training run in its own process, for the kill-and-resume test.

Usage: python -m tests.support.train_worker BACKUP_DIR RUN_DIR
Prints the Trainer's per-epoch lines, then the metrics as JSON.
"""

from __future__ import annotations

import argparse
import json

from components.training.config import training_config
from components.training.train import train
from tests.support.data import learnable_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backup_dir")
    parser.add_argument("run_dir")
    args = parser.parse_args()
    backup_dir, run_dir = args.backup_dir, args.run_dir
    train_data = learnable_dataset(128, seed=0)
    eval_data = learnable_dataset(64, seed=1)
    settings = training_config("resnet9", epochs=3, batch_size=32, lr_knots=(0.0, 1.0, 3.0),
                               lr_values=(0.005, 0.025, 0.0), eval_every_epoch=False,
                               seed=0)
    _, _, metrics = train(settings, train_data, eval_data, run_dir, backup_dir)
    print(json.dumps(metrics), flush=True)


if __name__ == "__main__":
    main()
