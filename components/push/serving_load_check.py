"""ServingLoadCheck: InfraValidator's LOAD_AND_QUERY without Docker.

TFX's InfraValidator starts TF Serving in Docker, loads the candidate and sends it
requests; without a Docker daemon nothing checked that TF Serving can run the model at
all. This step loads the candidate the way TF Serving does (TensorFlow's TF1 loader:
restore op, init op, `Session.run`), replays its warmup requests and sends one request
to each signature, with `python -m serving check`: the same check the model server
applies to every version it loads and that an operator runs on a model base path.
It runs in a process of its own, as InfraValidator's server does (and `serving/`
stays a separate layer that the pipeline's components do not import).

Its InfraBlessing is written as InfraValidator writes one (`INFRA_BLESSED` or
`INFRA_NOT_BLESSED`, the `blessed` custom property the Pusher reads), with
`LOAD_CHECK_RESULT_FILE` beside it: what was checked, or why the model failed.
"""

import json
import os
import subprocess
import sys

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components import console
from components.contract import LOAD_CHECK_RESULT_FILE

# As TFX's InfraValidator marks its blessing; tfx.components.util.model_utils.
# is_infra_validated (the Pusher's check) reads the property.
INFRA_BLESSED_PROPERTY = "blessed"
INFRA_BLESSED_FILE = "INFRA_BLESSED"
INFRA_NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
# The directory `python -m serving` runs from: the project's root.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK_TIMEOUT_SECONDS = 900


def load_as_tf_serving(model_dir: str) -> dict:
    """`python -m serving check --model-dir model_dir --json`'s verdict: `ok`, and
    either `error` or what was checked."""
    command = [sys.executable, "-m", "serving", "check", "--model-dir", model_dir, "--json"]
    try:
        finished = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=CHECK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"loading {model_dir} as TF Serving does took over "
                                      f"{CHECK_TIMEOUT_SECONDS} s"}
    verdicts = [json.loads(line) for line in finished.stdout.splitlines()
                if line.startswith("{")]
    if finished.returncode not in (0, 1) or len(verdicts) != 1:
        tail = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"`{' '.join(command[1:])}` exited "
                                      f"{finished.returncode}: {tail}"}
    return verdicts[0]


@component
def ServingLoadCheck(  # noqa: N802 (a TFX component is named like a class)
    model: InputArtifact[standard_artifacts.Model],
    infra_blessing: OutputArtifact[standard_artifacts.InfraBlessing],
):
    """Blesses `model` for serving when TF Serving's loader runs it."""
    verdict = load_as_tf_serving(path_utils.serving_model_path(model.uri))
    with fileio.open(os.path.join(infra_blessing.uri, LOAD_CHECK_RESULT_FILE), "w") as out:
        json.dump(verdict, out, indent=2)
    marker = INFRA_BLESSED_FILE if verdict["ok"] else INFRA_NOT_BLESSED_FILE
    # As InfraValidator writes it: a GFile opened and closed unwritten is never created.
    io_utils.write_string_file(os.path.join(infra_blessing.uri, marker), "")
    infra_blessing.set_int_custom_property(INFRA_BLESSED_PROPERTY, int(verdict["ok"]))
    if verdict["ok"]:
        logging.info("ServingLoadCheck: %s; TF Serving's loader ran it in %.1f s (%d warmup "
                     "requests, signatures %s)", marker, verdict["seconds"],
                     verdict["warmup_requests"], ", ".join(verdict["signatures"]))
    else:
        console.report(f"ServingLoadCheck: {marker}, the model will not be pushed: "
                        f"{verdict['error']}")
