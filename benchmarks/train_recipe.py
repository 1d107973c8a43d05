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

Each child prints its epoch lines (training-only seconds, images/s, eval accuracy) to
stderr and one JSON line; this script prints both, per seed and as means, with the
ratios, and writes them to `--out`. `--epochs`, `--train-limit` and `--test-limit`
shorten a run on a CPU (the rate's knots scale with the epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCHMARKS)
GOALS = {"images_per_second_ratio": 1.0, "accuracy_points": 0.3, "h100_seconds": 30.0}


def _knots(epochs: int) -> tuple:
    """The recipe's knots (0, 5, 24 epochs) scaled to a shorter schedule."""
    return (0.0, 5.0 * epochs / 24, float(epochs))


def _backend() -> str:
    import importlib.util
    return "tensorflow" if importlib.util.find_spec("tensorflow") else "jax"


def _keras_child(args) -> dict:
    """Runs in a child with KERAS_BACKEND already set; returns the JSON report."""
    sys.path[:0] = [REPO_ROOT, BENCHMARKS]
    import keras

    import recipe_data
    from components.training.config import TrainingConfig

    data = recipe_data.load(args.data, args.train_limit, args.test_limit)
    hparams = TrainingConfig(epochs=args.epochs, seed=args.seed, lr_knots=_knots(args.epochs),
                             target_accuracy=args.target_accuracy)
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
    from components.training.recipe import accuracy, build_training_model, compile_for_training

    on_gpu = jax.devices()[0].platform == "gpu"
    policy = "mixed_float16" if on_gpu else "float32"
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(hparams.seed)
    images, labels = data["train"]
    whole = len(labels) // hparams.batch_size * hparams.batch_size
    keep = np.random.default_rng(hparams.seed).permutation(len(labels))[:whole]
    train_images, train_labels = jax.device_put(images[keep]), jax.device_put(labels[keep])
    steps_per_epoch = whole // hparams.batch_size
    model = build_training_model(hparams)
    compile_for_training(model, hparams, steps_per_epoch, jit_compile=True,
                         steps_per_execution=hparams.steps_per_execution)
    clock = TrainingClock(steps_per_epoch, hparams.batch_size, hparams.target_accuracy)
    progress_lines = Progress(hparams.epochs, steps_per_epoch, hparams.batch_size, None,
                              warn_cpu=False, clock=clock, stream=sys.stderr)
    started = time.monotonic()
    history = model.fit(train_images, train_labels, batch_size=hparams.batch_size,
                        epochs=hparams.epochs, shuffle=True, verbose=0,
                        validation_data=data["test"], callbacks=[clock, progress_lines])
    test_images, test_labels = data["test"]
    metrics = {**clock.summary(), "device": f"{jax.devices()[0].device_kind} (JAX)",
               "train_seconds": round(time.monotonic() - started, 1),
               "dtype_policy": policy, "xla": True,
               "eval_accuracy": accuracy(model, test_images, test_labels, tta_flip=False),
               "eval_accuracy_tta_flip": accuracy(model, test_images, test_labels,
                                                  tta_flip=True)}
    return model, history.history, metrics


def _run_child(command: list, environment: dict) -> dict:
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **environment},
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}... failed (exit {result.returncode})")
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
    return (f"{name:9s} {report['framework']} on {report['device']}, {report['dtype']}: "
            f"{report['steady_images_per_second'] or 0:.0f} img/s from epoch 2, "
            f"{len(report['epochs'])} epochs in "
            f"{report['train_only_seconds']:.1f}s of training, final "
            f"{report['final_accuracy']:.4f} (TTA {report['final_accuracy_tta']:.4f}), target "
            + (f"at epoch {reached['epoch']} after {reached['train_seconds']:.1f}s"
               if reached else "not reached"))


def _mean(reports: list, key: str) -> float:
    return statistics.mean(report[key] for report in reports if report[key] is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="cifar10_jpeg.npz or an official layout")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--target-accuracy", type=float, default=0.94)
    parser.add_argument("--backend", choices=["auto", "tensorflow", "jax"], default="auto")
    parser.add_argument("--torch-python", default=sys.executable,
                        help="an interpreter with PyTorch for the reference (default: this one)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", help="write the reports and the summary as JSON here")
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed is not None:
        args.seed = args.child_seed
        print(json.dumps(_keras_child(args)), flush=True)
        return

    backend = _backend() if args.backend == "auto" else args.backend
    shared = ["--data", args.data, "--epochs", str(args.epochs),
              "--target-accuracy", str(args.target_accuracy)]
    for flag, value in (("--train-limit", args.train_limit), ("--test-limit", args.test_limit)):
        if value is not None:
            shared += [flag, str(value)]
    knots = ",".join(str(k) for k in _knots(args.epochs))
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"seed {seed}: the project's trainer (Keras, {backend} backend)", file=sys.stderr)
        project = _run_child([sys.executable, __file__, *shared, "--child-seed", str(seed)],
                             {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
                              "PYTHONUNBUFFERED": "1"})
        print(_line("project", project), flush=True)
        reference = None
        if not args.no_reference:
            print(f"seed {seed}: the PyTorch reference", file=sys.stderr)
            reference = _run_child([args.torch_python,
                                    os.path.join(BENCHMARKS, "torch_resnet9_train.py"), *shared,
                                    "--seed", str(seed), "--lr-knots", knots],
                                   {"PYTHONUNBUFFERED": "1"})
            print(_line("reference", reference), flush=True)
        runs.append({"seed": seed, "project": project, "reference": reference})

    projects = [run["project"] for run in runs]
    summary = {"seeds": len(runs),
               "project_images_per_second": _mean(projects, "steady_images_per_second"),
               "project_fit_seconds": _mean(projects, "fit_seconds"),
               "project_final_accuracy_tta": _mean(projects, "final_accuracy_tta"),
               "project_final_accuracy": _mean(projects, "final_accuracy"),
               "project_train_only_seconds": _mean(projects, "train_only_seconds")}
    print(f"\nproject, mean of {len(runs)} seed(s): {summary['project_images_per_second']:.0f} "
          f"img/s, {summary['project_train_only_seconds']:.1f}s of training "
          f"({summary['project_fit_seconds']:.1f}s for the whole fit) for "
          f"{args.epochs} epochs, final {summary['project_final_accuracy']:.4f} "
          f"(TTA {summary['project_final_accuracy_tta']:.4f})")
    references = [run["reference"] for run in runs if run["reference"]]
    if references:
        ratio = summary["project_images_per_second"] / _mean(references,
                                                             "steady_images_per_second")
        points = 100 * (summary["project_final_accuracy"] - _mean(references, "final_accuracy"))
        summary.update(reference_images_per_second=_mean(references,
                                                         "steady_images_per_second"),
                       reference_final_accuracy=_mean(references, "final_accuracy"),
                       reference_final_accuracy_tta=_mean(references, "final_accuracy_tta"),
                       images_per_second_ratio=round(ratio, 3), accuracy_points=round(points, 2))
        print(f"reference, mean: {summary['reference_images_per_second']:.0f} img/s, final "
              f"{summary['reference_final_accuracy']:.4f} (TTA "
              f"{summary['reference_final_accuracy_tta']:.4f})")
        print(f"project / reference: {ratio:.2f}x the images/s (goal >= "
              f"{GOALS['images_per_second_ratio']}x), {points:+.2f} accuracy points (goal within "
              f"{GOALS['accuracy_points']})")
    if "H100" in projects[0]["device"]:
        print(f"24 epochs in {summary['project_fit_seconds']:.1f}s on the H100, compilation "
              f"and evaluation included (goal <= {GOALS['h100_seconds']:.0f}s)")
    if args.out:
        with open(args.out, "w") as out_file:
            json.dump({"runs": runs, "summary": summary}, out_file, indent=1)


if __name__ == "__main__":
    main()
