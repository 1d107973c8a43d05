"""TensorFlow imported without the start-up lines that call for no action, so that a
server's console shows the server's own lines.

TensorFlow 2.16's C++ code writes these to standard error while it is imported, on
every machine, at error and warning level (tensorflow/tensorflow#62075): the CUDA
plugin factories registered twice, TensorRT not found, the CPU instructions it was
not built for. Standard error is captured for the import only; every other line it
printed is passed on unchanged, so a real problem (a library that fails to load)
still shows.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Substrings of the import-time lines that are dropped.
HARMLESS_IMPORT_LINES = (
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called",
)


def tensorflow():
    """The tensorflow module, imported (once) with its harmless start-up lines dropped."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:  # also when the import fails: its reason is among the lines
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(True):
                if not any(harmless in line for harmless in HARMLESS_IMPORT_LINES):
                    sys.stderr.write(line)
            sys.stderr.flush()
    return tensorflow
