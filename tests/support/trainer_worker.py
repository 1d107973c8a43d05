"""TFX's Trainer executor in a process of its own (the multi-worker test, the fast
recipe's test): `start_trainer` and `finish_trainer` run it.

Usage: python -m tests.support.trainer_worker SETTINGS_JSON
SETTINGS_JSON holds "transformed_examples" and "transform_graph" (artifact URIs), "model"
and "model_run" (output URIs), "backup_root", "training" (a TrainingConfig as a dict) and
"mirrored_cpus" (0, or the logical CPUs to split the CPU into).

The executor is TFX's GenericExecutor with the project's run_fn, as the Trainer runs it
locally and as Vertex runs it in each replica of a training job (tfx.scripts.run_executor
with the same arguments everywhere); TF_CONFIG in the environment names this process's
task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tfx.components.trainer.executor import GenericExecutor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.contract import TEST_SPLIT, TRAIN_SPLIT
from components.training.config import BACKUP_ROOT_KEY, TRAINING_KEY
from tests.support.data import REPO_ROOT


def start_trainer(settings: dict, log_prefix: str, tf_config=None) -> subprocess.Popen:
    """The trainer's console goes to <log_prefix>.out and .err: files, not pipes, since
    a worker blocked on a full pipe would stall its peers in their collectives."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    if tf_config:
        environment["TF_CONFIG"] = json.dumps(tf_config)
    with open(log_prefix + ".out", "w") as out, open(log_prefix + ".err", "w") as err:
        trainer = subprocess.Popen([sys.executable, "-m", "tests.support.trainer_worker",
                                    json.dumps(settings)], cwd=REPO_ROOT, env=environment,
                                   stdout=out, stderr=err)
    trainer.log_prefix = log_prefix
    return trainer


def finish_trainer(trainer: subprocess.Popen) -> str:
    """The console output of a trainer that exited 0."""
    trainer.wait(timeout=600)
    with open(trainer.log_prefix + ".out") as out, open(trainer.log_prefix + ".err") as err:
        output, errors = out.read(), err.read()
    assert trainer.returncode == 0, output[-3000:] + errors[-5000:]
    return output


def _artifact(artifact_type, uri: str, split_names=None):
    artifact = artifact_type()
    artifact.uri = uri
    if split_names:
        artifact.split_names = artifact_utils.encode_split_names(split_names)
    return artifact


def main() -> None:
    settings = json.loads(sys.argv[1])
    if settings.get("mirrored_cpus"):
        import tensorflow as tf

        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * settings["mirrored_cpus"])
    specs = standard_component_specs
    GenericExecutor().Do(
        {specs.EXAMPLES_KEY: [_artifact(standard_artifacts.Examples,
                                        settings["transformed_examples"],
                                        [TRAIN_SPLIT, TEST_SPLIT])],
         specs.TRANSFORM_GRAPH_KEY: [_artifact(standard_artifacts.TransformGraph,
                                               settings["transform_graph"])]},
        {specs.MODEL_KEY: [_artifact(standard_artifacts.Model, settings["model"])],
         specs.MODEL_RUN_KEY: [_artifact(standard_artifacts.ModelRun, settings["model_run"])]},
        {specs.RUN_FN_KEY: "components.training.run_fn.run_fn",
         specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(
             trainer_pb2.TrainArgs(splits=[TRAIN_SPLIT])),
         specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(
             trainer_pb2.EvalArgs(splits=[TEST_SPLIT])),
         specs.CUSTOM_CONFIG_KEY: json.dumps({TRAINING_KEY: settings["training"],
                                              BACKUP_ROOT_KEY: settings["backup_root"]})})


if __name__ == "__main__":
    main()
