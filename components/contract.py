"""What producers and consumers of this project's data and model must agree on.

Every name that crosses a boundary is spelled here once: the features ExampleGen
writes and Transform reads, the features Transform writes and the Trainer reads, the
splits, the image and class set, the exported model's signatures with their inputs
and outputs, and the rule that makes a directory a servable model version.

Standard library only, and nothing imported at module level beyond it: `serving/`
depends on this module alone, and must start without TensorFlow's or TFX's import time.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Dict, Optional

# --- Raw features: the tf.Examples ExampleGen writes (and InfraValidator, TFMA and
# the Classify API send to the model).
IMAGE_KEY = "image"  # the 32x32 RGB image, PNG bytes
LABEL_KEY = "label"  # int64 class id, 0..9
IMAGE_ID_KEY = "image_id"  # "<batch name>:<index>", e.g. "data_batch_3:00042"

# --- Transformed features: what Transform writes and the Trainer reads.
IMAGE_XF_KEY = "image_xf"  # float32 [32, 32, 3], per-channel Z-scored
LABEL_XF_KEY = "label_xf"

# --- Splits of every Examples artifact.
TRAIN_SPLIT = "train"
TEST_SPLIT = "test"

# --- The images and their classes.
IMAGE_HEIGHT = 32
IMAGE_WIDTH = 32
IMAGE_CHANNELS = 3
IMAGE_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_CHANNELS)
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
NUM_CLASSES = len(CLASS_NAMES)

# --- The exported SavedModel's signatures, and the one input each takes.
DEFAULT_SIGNATURE = "serving_default"  # encoded images (PNG, JPEG, BMP, GIF)
EXAMPLES_SIGNATURE = "serving_examples"  # serialized tf.Examples holding IMAGE_KEY
PIXELS_SIGNATURE = "serving_pixels"  # uint8 HWC pixel arrays
IMAGES_INPUT = "images"
EXAMPLES_INPUT = "examples"
PIXELS_INPUT = "pixels"
# Every signature returns these three.
CLASS_IDS_OUTPUT = "class_ids"  # int64 [N]
CLASS_NAMES_OUTPUT = "class_names"  # string [N], from CLASS_NAMES
PROBABILITIES_OUTPUT = "probabilities"  # float32 [N, NUM_CLASSES]

# The exported SavedModel holds the model's variables as one collection in
# `model.variables` order: an attribute of the SavedModel's root object (the revived
# object's `.model_variables`, and a child of the checkpoint's object graph), which a
# warm start reads back.
MODEL_VARIABLES_KEY = "model_variables"

# --- Served model versions (TF Serving's file-system source): an integer directory
# under the model base path is a version once its saved_model.pb exists. The Pusher
# copies that file last, so a version is never seen half-written.
SAVED_MODEL_FILE = "saved_model.pb"
_VERSION_DIR = re.compile(r"^[0-9]+$")

# TF Serving's warmup file inside a SavedModel: PredictionLog records it replays when
# it loads the version, before the version is AVAILABLE (the embedded server too).
WARMUP_REQUESTS_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Its requests: one per size clients send: 1 (`python -m serving predict` on one image,
# interactive clients), 8 (small client batches) and 32 (bulk clients). A server must
# take the largest in one batch: `python -m serving serve` refuses a --max-batch-size
# below it (TF Serving would fail every load through its batching session).
WARMUP_BATCH_SIZES = (1, 8, 32)

# What the RegressionGate (after the Evaluator) leaves beside its blessing: the
# decision with the numbers behind it (JSON), and the per-image predictions of the
# candidate (and the baseline) on the test split (NumPy .npz).
GATE_RESULT_FILE = "gate.json"
GATE_PREDICTIONS_FILE = "predictions.npz"

# What the ServingLoadCheck (the model loaded as TF Serving loads it, before a push)
# leaves beside its InfraBlessing: `python -m serving check`'s verdict (JSON).
LOAD_CHECK_RESULT_FILE = "load_check.json"

# What the Trainer writes into its model_run artifact beside TensorBoard's logs, and
# the run report reads: its figures (JSON, the per-epoch history included) and the
# training curves (PNG).
TRAINING_METRICS_FILE = "metrics.json"
TRAINING_CURVES_FILE = "curves.png"

# The model config beside the versions under a model base path: TF Serving's
# ModelServerConfig (text format) with the version policy and version labels. Absent,
# the newest version is served; `python -m serving label` writes it, and once it names
# a `stable` version a new push is served only when a label is moved onto it. Versions
# that have been `stable`, oldest first, one per line, are kept beside it for rollback.
MODEL_CONFIG_FILE = "models.config"
STABLE_HISTORY_FILE = "stable_history"
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
VERSION_LABELS = (STABLE_LABEL, CANARY_LABEL)

# --- On-device models: TensorFlow Lite conversions of each trained model, pushed with a
# blessed version under <serving_model_dir>/tflite/<model name>/<version>/ (the same
# version number as the SavedModel's). Each takes uint8 pixels [N, 32, 32, 3] (decoding
# PNG/JPEG is the app's job) and returns PROBABILITIES_OUTPUT [N, NUM_CLASSES]; the
# Transform's Z-score (and the model's test-time augmentation) is inside.
TFLITE_DIR = "tflite"
TFLITE_VARIANTS = ("float16", "int8")  # float16 weights; full-integer with uint8 input
TFLITE_SIGNATURE = "serving_tflite"
TFLITE_INPUT = PIXELS_INPUT
TFLITE_OUTPUT = PROBABILITIES_OUTPUT
TFLITE_LABELS_FILE = "labels.txt"  # CLASS_NAMES, one per line, in class-id order
# What the TFLiteExport component leaves beside the models: each variant's accuracy on
# the test split beside the SavedModel's on the same images, its size, and whether it
# passed the drop limit (JSON).
TFLITE_CHECK_FILE = "tflite_check.json"


def tflite_file(variant: str) -> str:
    """`model_float16.tflite`, `model_int8.tflite`."""
    return f"model_{variant}.tflite"


def tflite_base_path(serving_model_base_path: str) -> str:
    """<serving_model_dir>/tflite/<model name> beside <serving_model_dir>/<model name>."""
    serving_model_dir, model_name = os.path.split(os.path.normpath(serving_model_base_path))
    return os.path.join(serving_model_dir, TFLITE_DIR, model_name)


# Sampled requests a server (or the logging proxy in front of TF Serving) answered, with
# their responses: TFRecord files of TF Serving's PredictionLog protos in the request
# log directory, named <prefix><UTC time>-<pid>-<sequence><suffix> so that names sort
# oldest first. `python -m pipeline monitor` reads them back.
REQUEST_LOG_FILE_PREFIX = "requests-"
REQUEST_LOG_FILE_SUFFIX = ".tfrecord"

# The Pusher's custom property naming the version a model already is (no re-push).
ALREADY_PUSHED_AS_PROPERTY = "already_pushed_as"
# TFX's custom property of an Examples (or statistics) artifact: the span it holds.
SPAN_PROPERTY = "span"


def request_log_files(directory: str) -> list:
    """The request log files in `directory`, oldest first (their names sort by time)."""
    return sorted(name for name in os.listdir(directory)
                  if name.startswith(REQUEST_LOG_FILE_PREFIX)
                  and name.endswith(REQUEST_LOG_FILE_SUFFIX))


def ready_versions(base_path: str, listdir: Callable = os.listdir,
                   isfile: Callable = os.path.isfile) -> Dict[int, str]:
    """Version number -> directory, for every complete version under `base_path`.

    `listdir` and `isfile` default to the local file system; TFX code passes its own
    (`tfx.dsl.io.fileio`) so that gs:// and other remote base paths work too.
    """
    versions = {}
    try:
        names = listdir(base_path)
    except (FileNotFoundError, NotADirectoryError):
        return versions
    for name in names:
        name = name.rstrip("/")
        path = os.path.join(base_path, name)
        if _VERSION_DIR.match(name) and isfile(os.path.join(path, SAVED_MODEL_FILE)):
            versions[int(name)] = path
    return versions


def newest_version(base_path: str, listdir: Callable = os.listdir,
                   isfile: Callable = os.path.isfile) -> Optional[str]:
    """The directory of the newest complete version under `base_path`, or None."""
    versions = ready_versions(base_path, listdir, isfile)
    return versions[max(versions)] if versions else None
