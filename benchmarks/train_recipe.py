"""The whole ResNet9 recipe with the project's model code, beside a PyTorch reference
of the same recipe, on the same data and device, in one run.

    python benchmarks/train_recipe.py --data ../shared/cifar10-jpeg/cifar10_jpeg.npz \
        --seeds 0,1,2 --torch-python /path/to/python-with-torch

For each seed, two child processes train the 24-epoch recipe (batch 512, piecewise
linear rate per step, Nesterov SGD with coupled weight decay 5e-4, pad-crop + flip +
cutout on the device), one after the other:
- the project's: the TensorFlow backend runs the pipeline's own `train()` (XLA and
  mixed float16 on a GPU); where TensorFlow is missing, the JAX backend runs the same
  model, augmentation layer, schedule and optimizer (components/training/recipe.py)
  with Keras `fit` on arrays held on the device (the train set is cut to whole
  batches of a seeded permutation: Keras would compile a second step for the rest);
- the reference: benchmarks/torch_resnet9_train.py (fp16 autocast and channels-last
  on a GPU), under `--torch-python` or this interpreter if it has PyTorch.

The data is decoded once (`recipe_data.decode_once`, kept under `--decoded-cache` for
later runs too) and every child reads the decoded arrays. Both sides follow the
pipeline's recipe (`TrainingConfig`'s rate values; the knots scale with `--epochs`);
the reference keeps PyTorch's own initialisation, the project uses `--initializer`
(the Trainer's default), and on the run's first seed the project is also trained with
`--compare-initializer` (he_uniform), after the reference, so that the first two
trainings already answer the main question.

`--recipe fast` trains the fast profile's airbench94 recipe instead (9.9 epochs of
1,024, its six-view TTA in the "TTA" figure), with no reference: on
`../shared/cifar10-full/cifar10_png.npz` its accuracy is CIFAR-10 test accuracy, and
`--holdout 5000` scores on the last 5,000 training images instead, to choose settings.
The summary gives every seed, the mean and the standard deviation.

Each child prints its epoch lines (training-only seconds, images/s, eval accuracy) to
stderr and one JSON line; this script prints both, per seed and as means, with the
ratios, and rewrites `--out` as each training ends, so a run cut short keeps what
finished. `--epochs`, `--train-limit` and `--test-limit` shorten a run on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCHMARKS)
GOALS = {"images_per_second_ratio": 1.0, "accuracy_points": 0.3, "h100_seconds": 30.0}
sys.path.insert(0, REPO_ROOT)
from components.training.config import training_config  # noqa: E402 (no TF, no Keras)
from components.training.recipes import RECIPES  # noqa: E402

# --recipe: the full profile's ResNet9, or the fast profile's airbench94.
RECIPE_NAMES = {"resnet9": "resnet9", "fast": "airbench94"}


def _epochs(args) -> float:
    return args.epochs or RECIPES[RECIPE_NAMES[args.recipe]]["epochs"]


def _knots(recipe: str, epochs: float) -> tuple:
    """The recipe's knots (in epochs) scaled to `epochs`."""
    recipe_epochs = RECIPES[recipe]["epochs"]
    return tuple(knot * epochs / recipe_epochs for knot in RECIPES[recipe]["lr_knots"])


def _backend() -> str:
    import importlib.util
    return "tensorflow" if importlib.util.find_spec("tensorflow") else "jax"


def _keras_child(args) -> dict:
    """Runs in a child with KERAS_BACKEND already set; returns the JSON report."""
    sys.path[:0] = [REPO_ROOT, BENCHMARKS]
    import keras

    import recipe_data

    # The decoded cache, already cut to the limits; the held-out images are the eval set.
    data = recipe_data.load(args.data, holdout=args.holdout)
    recipe, epochs = RECIPE_NAMES[args.recipe], _epochs(args)
    hparams = training_config(recipe, epochs=epochs, seed=args.seed,
                              lr_knots=_knots(recipe, epochs),
                              target_accuracy=args.target_accuracy,
                              kernel_initializer=args.child_initializer,
                              mixed_precision=args.mixed_precision)
    if keras.backend.backend() == "tensorflow":
        from components.training.train import train
        with tempfile.TemporaryDirectory() as run_dir:
            model, history, metrics = train(hparams, data["train"], data["test"], run_dir,
                                            os.path.join(run_dir, "backup"),
                                            stream=sys.stderr)
    else:
        model, history, metrics = _fit_with_jax(hparams, data)
    epochs = [{"epoch": index + 1, "train_seconds": seconds,
               "images_per_second": None if not seconds else round(
                   steps * hparams.batch_size / seconds, 1),
               "eval_accuracy": round(history["val_accuracy"][index], 4),
               "loss": round(history["loss"][index], 4)}
              for index, (seconds, steps) in enumerate(zip(metrics["epoch_train_seconds"],
                                                           metrics["epoch_steps"]))]
    return {"framework": f"keras {keras.__version__} ({keras.backend.backend()})",
            "initializer": hparams.kernel_initializer,
            "device": metrics["device"], "dtype": metrics["dtype_policy"],
            "xla": metrics["xla"], "seed": args.seed, "batch_size": hparams.batch_size,
            "epochs": epochs, "compile_seconds": metrics["compile_seconds"],
            "fit_seconds": metrics["train_seconds"],
            "train_only_seconds": metrics["train_only_seconds"],
            "images_per_second": metrics["images_per_second"],
            "time_to_target": metrics["time_to_target"],
            "final_accuracy": metrics["eval_accuracy"],
            "final_accuracy_tta": metrics["eval_accuracy_tta_flip"],
            "train_images": len(data["train"][1]), "test_images": len(data["test"][1])}


def _fit_with_jax(hparams, data) -> tuple:
    import jax
    import keras
    import numpy as np

    from components.training.callbacks import Progress, TrainingClock
    from components.training.recipe import (accuracy, build_training_model,
                                            compile_for_training, finish_training,
                                            initialise_from_data, total_steps)

    on_gpu = jax.devices()[0].platform == "gpu"
    policy = "mixed_float16" if on_gpu else "float32"
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(hparams.seed)
    images, labels = data["train"]
    whole = len(labels) // hparams.batch_size * hparams.batch_size
    keep = np.random.default_rng(hparams.seed).permutation(len(labels))[:whole]
    train_images, train_labels = jax.device_put(images[keep]), jax.device_put(labels[keep])
    steps_per_epoch = whole // hparams.batch_size
    steps = total_steps(hparams, steps_per_epoch)
    epochs = math.ceil(steps / steps_per_epoch)
    last_epoch_steps = steps - (epochs - 1) * steps_per_epoch
    model = build_training_model(hparams)
    initialise_from_data(model, hparams, images)
    compile_for_training(model, hparams, steps_per_epoch, jit_compile=True,
                         steps_per_execution=math.gcd(hparams.steps_per_execution,
                                                      steps_per_epoch, last_epoch_steps))
    clock = TrainingClock(steps_per_epoch, hparams.batch_size, hparams.target_accuracy)
    progress_lines = Progress(epochs, steps_per_epoch, hparams.batch_size, steps,
                              warn_cpu=False, clock=clock, stream=sys.stderr)
    # One fit per epoch: the alternating flip shows each epoch its own images (the
    # TensorFlow path flips in its tf.data pipeline), and the last epoch may be a part.
    first_epoch_flips = jax.device_put(
        np.random.default_rng(hparams.seed).random(whole) < 0.5)
    history = {}
    started = time.monotonic()
    for epoch in range(epochs):
        epoch_images = train_images
        if hparams.flip and hparams.alternating_flip:
            flip = first_epoch_flips != (epoch % 2 == 1)
            epoch_images = jax.numpy.where(flip[:, None, None, None],
                                           train_images[:, :, ::-1], train_images)
        epoch_history = model.fit(
            epoch_images, train_labels, batch_size=hparams.batch_size,
            initial_epoch=epoch, epochs=epoch + 1,
            steps_per_epoch=steps_per_epoch if epoch < epochs - 1 else last_epoch_steps,
            shuffle=True, verbose=0, validation_data=data["test"],
            callbacks=[clock, progress_lines])
        for key, values in epoch_history.history.items():
            history.setdefault(key, []).extend(values)
    finish_training(model)
    test_images, test_labels = data["test"]
    metrics = {**clock.summary(), "device": f"{jax.devices()[0].device_kind} (JAX)",
               "train_seconds": round(time.monotonic() - started, 1),
               "dtype_policy": policy, "xla": True,
               "eval_accuracy": accuracy(model, test_images, test_labels),
               "eval_accuracy_tta_flip": accuracy(model, test_images, test_labels,
                                                  tta_flip=True,
                                                  tta_translate=hparams.tta_translate)}
    return model, history, metrics


def _run_child(command: list, environment: dict) -> Optional[dict]:
    """The child's JSON report, or None when it failed (said on stderr): the trainings
    after it still run, since a GPU machine's minutes are few."""
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **environment},
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        print(f"{' '.join(command[:3])}... failed (exit {result.returncode}); going on",
              file=sys.stderr, flush=True)
        return None
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def _steady_images_per_second(report: dict):
    """Images/s over epochs 2 on: epoch 1 holds the reference's cuDNN autotuning and
    the project's first (compiling) execution, which each side times differently."""
    timed = [epoch for epoch in report["epochs"][1:] if epoch["train_seconds"]]
    seconds = sum(epoch["train_seconds"] for epoch in timed)
    images = sum(epoch["images_per_second"] * epoch["train_seconds"] for epoch in timed)
    return round(images / seconds, 1) if seconds else None


def _line(name: str, report: dict) -> str:
    reached = report["time_to_target"]
    report["steady_images_per_second"] = _steady_images_per_second(report)
    return (f"{name:9s} {report['framework']} on {report['device']}, {report['dtype']}, "
            f"{report.get('initializer')}: "
            f"{_figure(report['steady_images_per_second'], '.0f')} img/s from epoch 2, "
            f"{len(report['epochs'])} epochs in "
            f"{report['train_only_seconds']:.1f}s of training, final "
            f"{report['final_accuracy']:.4f} (TTA {report['final_accuracy_tta']:.4f}), target "
            + (f"at epoch {reached['epoch']} after {reached['train_seconds']:.1f}s"
               if reached else "not reached"))


def _mean(reports: list, key: str) -> Optional[float]:
    """The mean over the reports that have the figure; None when none has it (a 1-epoch
    run has no steady epochs)."""
    values = [report[key] for report in reports if report and report.get(key) is not None]
    return statistics.mean(values) if values else None


def _figure(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + unit


def summarize(runs: list, epochs: int, show: bool = True) -> dict:
    """Means per trainer over the seeds that finished, ratios against the reference,
    and the goals (printed when `show`); whatever is there (a run cut short, a 1-epoch
    run)."""
    print_line = print if show else (lambda *args, **kwargs: None)
    summary = {"seeds": len(runs)}
    for role in ("project", "reference", "compare"):
        reports = [run[role] for run in runs if run.get(role)]
        if not reports:
            continue
        row = {"runs": len(reports), "initializer": reports[0].get("initializer"),
               **{key: _mean(reports, key) for key in (
                   "steady_images_per_second", "fit_seconds", "train_only_seconds",
                   "final_accuracy", "final_accuracy_tta")}}
        for key in ("final_accuracy", "final_accuracy_tta"):
            values = [report[key] for report in reports if report.get(key) is not None]
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        summary[role] = row
        name = f"{role} ({row['initializer']})" if row["initializer"] else role
        print_line(f"{name}, mean of {len(reports)} seed(s): "
                   f"{_figure(row['steady_images_per_second'], '.0f')} img/s from epoch 2, "
                   f"{_figure(row['train_only_seconds'], '.1f', 's')} of training "
                   f"({_figure(row['fit_seconds'], '.1f', 's')} for the whole fit) for "
                   f"{epochs:g} epochs, final {_figure(row['final_accuracy'], '.4f')} "
                   f"(std {_figure(row['final_accuracy_std'], '.4f')}), TTA "
                   f"{_figure(row['final_accuracy_tta'], '.4f')} (std "
                   f"{_figure(row['final_accuracy_tta_std'], '.4f')}); per seed: "
                   + ", ".join(f"{report['seed']}: {report['final_accuracy_tta']:.4f} in "
                               f"{report['train_only_seconds']:.0f}s" for report in reports))
    reference = summary.get("reference")
    for role in ("project", "compare"):
        row = summary.get(role)
        if not row or not reference:
            continue
        if row["steady_images_per_second"] and reference["steady_images_per_second"]:
            row["images_per_second_ratio"] = round(
                row["steady_images_per_second"] / reference["steady_images_per_second"], 3)
        if row["final_accuracy"] is not None and reference["final_accuracy"] is not None:
            row["accuracy_points"] = round(
                100 * (row["final_accuracy"] - reference["final_accuracy"]), 2)
        print_line(f"{role} / reference: "
                   f"{_figure(row.get('images_per_second_ratio'), '.2f', 'x')} the images/s "
                   f"(goal >= {GOALS['images_per_second_ratio']}x), "
                   f"{_figure(row.get('accuracy_points'), '+.2f')} accuracy points (goal "
                   f"within {GOALS['accuracy_points']})")
    project_runs = [run["project"] for run in runs if run.get("project")]
    if project_runs and "H100" in project_runs[0]["device"] and \
            summary["project"]["fit_seconds"]:
        print_line(f"{epochs} epochs in {summary['project']['fit_seconds']:.1f}s on the "
                   f"H100, compilation and evaluation included (goal <= "
                   f"{GOALS['h100_seconds']:.0f}s)")
    return summary


def _write(path: Optional[str], runs: list, summary: dict) -> None:
    if path:
        partial = f"{path}.partial"
        with open(partial, "w") as out_file:
            json.dump({"runs": runs, "summary": summary}, out_file, indent=1)
        os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="cifar10_jpeg.npz or an official layout")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--recipe", choices=sorted(RECIPE_NAMES), default="resnet9",
                        help="resnet9: the full profile's, beside the PyTorch reference; "
                             "fast: the fast profile's airbench94 (no reference)")
    parser.add_argument("--epochs", type=float,
                        help="default: the recipe's (24; 9.9); the rate's knots scale with it")
    parser.add_argument("--holdout", type=int, default=0,
                        help="evaluate on the last N training images, trained without them "
                             "(choosing settings), instead of the test split")
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--target-accuracy", type=float, default=0.94)
    parser.add_argument("--backend", choices=["auto", "tensorflow", "jax"], default="auto")
    parser.add_argument("--torch-python", default=sys.executable,
                        help="an interpreter with PyTorch for the reference (default: this one)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--initializer", default="torch_default",
                        help="the project's kernel initializer on every seed (the "
                             "recipes' own)")
    parser.add_argument("--compare-initializer", default="he_uniform",
                        help="also trained on the run's first seed, after the project and "
                             "the reference ('': none)")
    parser.add_argument("--mixed-precision", default="auto",
                        choices=["auto", "off", "float16", "bfloat16"],
                        help="the project's training.mixed_precision (TensorFlow backend; "
                             "under JAX: float16 on a GPU, float32 on a CPU)")
    parser.add_argument("--decoded-cache",
                        default=os.path.join(tempfile.gettempdir(), "cifar10-recipe-decoded"),
                        help="where the decoded images are kept for the child processes "
                             "and later runs")
    parser.add_argument("--out", help="the reports and the summary as JSON, rewritten as "
                                      "each training ends")
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-initializer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed is not None:
        args.seed = args.child_seed
        print(json.dumps(_keras_child(args)), flush=True)
        return

    sys.path.insert(0, BENCHMARKS)
    import recipe_data

    started = time.monotonic()
    data = recipe_data.decode_once(args.data, args.train_limit, args.test_limit,
                                   args.decoded_cache)
    print(f"data: {data} ({time.monotonic() - started:.1f}s to decode or find)",
          file=sys.stderr, flush=True)
    backend = _backend() if args.backend == "auto" else args.backend
    epochs = _epochs(args)
    shared = ["--data", data, "--epochs", f"{epochs:g}", "--holdout", str(args.holdout),
              "--target-accuracy", str(args.target_accuracy)]
    project_flags = ["--mixed-precision", args.mixed_precision, "--recipe", args.recipe]
    knots = ",".join(str(k) for k in _knots("resnet9", epochs))
    values = ",".join(str(v) for v in RECIPES["resnet9"]["lr_values"])
    if args.recipe != "resnet9":
        # The reference and the initializer comparison are ResNet9's.
        args.no_reference, args.compare_initializer = True, ""
    keras_environment = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
                         "PYTHONUNBUFFERED": "1"}
    runs = []

    def project(seed: int, initializer: str) -> dict:
        print(f"seed {seed}: the project's trainer (Keras, {backend} backend, "
              f"{initializer})", file=sys.stderr)
        return _run_child([sys.executable, __file__, *shared, *project_flags,
                           "--child-seed", str(seed),
                           "--child-initializer", initializer], keras_environment)

    # The first minutes answer the main question: the project at its defaults beside
    # the reference on the first seed; the other initializer, then more seeds, follow.
    for index, seed in enumerate(int(s) for s in args.seeds.split(",")):
        run = {"seed": seed, "project": project(seed, args.initializer), "reference": None}
        runs.append(run)
        if run["project"]:
            print(_line("project", run["project"]), flush=True)
        _write(args.out, runs, {})
        if not args.no_reference:
            print(f"seed {seed}: the PyTorch reference", file=sys.stderr)
            run["reference"] = _run_child(
                [args.torch_python, os.path.join(BENCHMARKS, "torch_resnet9_train.py"),
                 *shared, "--seed", str(seed), "--lr-knots", knots, "--lr-values", values],
                {"PYTHONUNBUFFERED": "1"})
            if run["reference"]:
                run["reference"]["initializer"] = "pytorch default"
                print(_line("reference", run["reference"]), flush=True)
            _write(args.out, runs, {})
        if index == 0 and args.compare_initializer and \
                args.compare_initializer != args.initializer:
            run["compare"] = project(seed, args.compare_initializer)
            if run["compare"]:
                print(_line("compare", run["compare"]), flush=True)
            _write(args.out, runs, {})
        print(file=sys.stderr)
        _write(args.out, runs, summarize(runs, epochs, show=False))
    print()
    summarize(runs, epochs)


if __name__ == "__main__":
    main()
