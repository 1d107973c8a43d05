"""Re-exports a version TF Serving cannot run as a new version that it can.

Versions exported before the Trainer used Keras's ExportArchive run under
`tf.saved_model.load` but not under TF Serving's loader (`serving.load_check`). Loaded
through the object graph, their variables come back as plain tf.Variables; saved again
with the same signatures, the saver restores exactly the variables the graph reads.
Nothing is retrained: the new version computes what the old one did (same weights,
same Transform graph, same signatures and outputs), and its warmup file is copied.

The new version is written beside the others under a name TF Serving ignores, checked
with TF Serving's loader, and only then renamed to the next version number, so a
server never sees it half-written and no existing version is touched.
"""

from __future__ import annotations

import os
import shutil

from components.contract import WARMUP_REQUESTS_FILE, ready_versions
from serving.load_check import LoadCheck, check_version


def reexport(base_path: str, version: int) -> tuple:
    """Writes version `version` of `base_path` again as the next version number;
    returns (its number, its LoadCheck). Raises FileNotFoundError for a version that is
    not there and LoadCheckError when the re-export still fails the check."""
    import tensorflow as tf

    versions = ready_versions(base_path)
    if version not in versions:
        raise FileNotFoundError(f"{base_path}: no complete version {version} "
                                f"(versions: {sorted(versions) or 'none'})")
    new_version = max(versions) + 1
    staging = os.path.join(base_path, f".reexport-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        loaded = tf.saved_model.load(versions[version])
        tf.saved_model.save(loaded, staging, signatures=dict(loaded.signatures))
        warmup_source = os.path.join(versions[version], WARMUP_REQUESTS_FILE)
        if os.path.exists(warmup_source):
            os.makedirs(os.path.dirname(os.path.join(staging, WARMUP_REQUESTS_FILE)),
                        exist_ok=True)
            shutil.copyfile(warmup_source, os.path.join(staging, WARMUP_REQUESTS_FILE))
        check: LoadCheck = check_version(staging)
        target = os.path.join(base_path, str(new_version))
        os.rename(staging, target)  # fails rather than replace a version that appeared
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check.path = target
    return new_version, check
