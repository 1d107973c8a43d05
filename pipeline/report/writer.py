"""Writes `<output dir>/reports/<run id>/`: index.html, its pictures, the test images it
shows, TFDV's statistics page and the facts as JSON.

The folder is built beside its final place and renamed into it, so a reader never sees
half a report, and writing it again (`python -m pipeline report`) replaces it whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from typing import Optional

from components.contract import TEST_SPLIT, TRAIN_SPLIT
from components.data.split_files import split_statistics
from components.uris import copy_file

REPORTS_DIR = "reports"
INDEX_FILE = "index.html"
FACTS_FILE = "facts.json"
STATISTICS_FILE = "statistics.html"
CLASS_BALANCE_FILE = "class_balance.png"
CURVES_FILE = "curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MISTAKES_DIR = "mistakes"


def report_dir(output_dir: str, run_id: str) -> str:
    """The folder of one run's report: the run id with only file-name-safe characters."""
    return os.path.join(output_dir, REPORTS_DIR, re.sub(r"[^A-Za-z0-9._-]", "-", run_id))


def statistics_page(statistics_uri: str, path: str) -> bool:
    """TFDV's Facets view of the run's statistics, train beside test."""
    from tensorflow_data_validation.utils.display_util import get_statistics_html

    loaded = {split: statistics for split in (TRAIN_SPLIT, TEST_SPLIT)
              if (statistics := split_statistics(statistics_uri, split)) is not None}
    if not loaded:
        return False
    names = sorted(loaded, key=lambda split: split != TRAIN_SPLIT)
    html = get_statistics_html(loaded[names[0]], loaded[names[1]] if len(names) > 1 else None,
                               lhs_name=names[0], rhs_name=names[1] if len(names) > 1 else "")
    with open(path, "w") as page:
        page.write(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Statistics"
                   f"</title></head><body>\n{html}\n</body></html>\n")
    return True


def _mistake_images(facts: dict, folder: str) -> None:
    """Writes each shown test image as ExampleGen stored it (PNG bytes) and records its
    file name in the facts."""
    from pipeline.report import examples

    mistakes = (facts["evaluation"] or {}).get("mistakes")
    if not mistakes or not facts["data"]:
        return
    encoded = examples.encoded_images(facts["data"]["examples_uri"], TEST_SPLIT,
                                      (m["image_id"] for m in mistakes))
    os.makedirs(os.path.join(folder, MISTAKES_DIR))
    for index, mistake in enumerate(mistakes):
        if mistake["image_id"] in encoded:
            name = f"{MISTAKES_DIR}/{index:03d}.png"
            with open(os.path.join(folder, name), "wb") as image_file:
                image_file.write(encoded[mistake["image_id"]])
            mistake["file"] = name


def _write_files(facts: dict, folder: str) -> dict:
    from pipeline.report import charts

    files = {"statistics": None, "class_balance": None, "curves": None,
             "confusion_matrix": None}
    data, training, evaluation = facts["data"], facts["training"], facts["evaluation"]
    if data:
        charts.class_balance(data["class_counts"], os.path.join(folder, CLASS_BALANCE_FILE))
        files["class_balance"] = CLASS_BALANCE_FILE
        if data["statistics_uri"] and statistics_page(
                data["statistics_uri"], os.path.join(folder, STATISTICS_FILE)):
            files["statistics"] = STATISTICS_FILE
    if training and training["curves"]:
        copy_file(training["curves"], os.path.join(folder, CURVES_FILE))
        files["curves"] = CURVES_FILE
    if evaluation and evaluation["confusion_matrix"]:
        charts.confusion_matrix(evaluation["confusion_matrix"],
                                os.path.join(folder, CONFUSION_MATRIX_FILE))
        files["confusion_matrix"] = CONFUSION_MATRIX_FILE
    _mistake_images(facts, folder)
    return files


def write_report(metadata_path: str, pipeline_name: str, output_dir: str,
                 profile: Optional[str] = None, started_after_ms: Optional[int] = None
                 ) -> Optional[str]:
    """Writes the report of the pipeline's latest run; returns its index.html, or None
    when ML Metadata holds no run of the pipeline (none that started at or after
    `started_after_ms`, when given: a run that failed before its first component
    must not be reported as the one before it)."""
    from pipeline.report import facts as run_facts
    from pipeline.report.model_card import model_card
    from pipeline.report.render import render

    facts = run_facts.gather(metadata_path, pipeline_name, profile, started_after_ms)
    if facts is None:
        return None
    final_dir = report_dir(output_dir, facts["run"]["id"])
    with built_beside(final_dir) as folder:
        files = _write_files(facts, folder)
        card = model_card(facts)
        with open(os.path.join(folder, FACTS_FILE), "w") as facts_file:
            json.dump({**facts, "model_card": card, "files": files}, facts_file, indent=1)
        with open(os.path.join(folder, INDEX_FILE), "w") as page:
            page.write(render(facts, card, files))
    return os.path.join(final_dir, INDEX_FILE)


def unused_path(path: str) -> str:
    """`path`, or `path-2`, `path-3`, ... whichever does not exist yet: a new folder
    named by the time must not replace one made in the same second."""
    candidate, count = path, 1
    while os.path.exists(candidate):
        count += 1
        candidate = f"{path}-{count}"
    return candidate


_PARTIAL_PREFIX = ".partial-"
# Beside each folder being built: a file its builder holds locked (flock) until the
# folder is in place, so a later builder can tell an abandoned folder from one in
# progress; the lock ends with its process, however it ends.
_OWNER_SUFFIX = ".owner"
_building: set = set()  # the owner files of the folders this process is building


@contextlib.contextmanager
def built_beside(final_dir: str):
    """A fresh folder beside `final_dir` to write into; once the block ends, it is
    renamed to `final_dir` (replacing one that is there), so a reader sees the old
    folder or the whole new one, never a part. If the block raises (KeyboardInterrupt
    included), it is removed; one whose builder was killed is removed by the next
    builder in the same place."""
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    remove_abandoned(parent)
    owner_fd, owner_path = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, suffix=_OWNER_SUFFIX,
                                            dir=parent)
    fcntl.flock(owner_fd, fcntl.LOCK_EX)
    folder = owner_path[:-len(_OWNER_SUFFIX)]
    _building.add(owner_path)
    try:
        os.mkdir(folder, 0o755)
        yield folder
        if os.path.exists(final_dir):
            replaced = folder + ".old"
            os.rename(final_dir, replaced)
            os.rename(folder, final_dir)
            shutil.rmtree(replaced)
        else:
            os.rename(folder, final_dir)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        _building.discard(owner_path)
        os.remove(owner_path)
        os.close(owner_fd)


def abandon_building() -> None:
    """Removes every folder this process is building, for a process about to exit at
    once (a signal handler's `os._exit`), where `built_beside` cannot clean up."""
    for owner_path in list(_building):
        _remove_build(owner_path)


def _remove_build(owner_path: str) -> list:
    """Removes the folder under construction of `owner_path` (and the final folder it
    was replacing, if it was moved aside) and the owner file; returns what was there."""
    folder = owner_path[:-len(_OWNER_SUFFIX)]
    removed = [leftover for leftover in (folder, folder + ".old")
               if os.path.exists(leftover)]
    for leftover in removed:
        shutil.rmtree(leftover, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(owner_path)
    return removed


def remove_abandoned(parent: str) -> list:
    """Removes the folders under construction in `parent` whose builder is gone (its
    owner file no longer locked); returns their paths. Folders in progress stay."""
    removed = []
    for name in os.listdir(parent):
        if not (name.startswith(_PARTIAL_PREFIX) and name.endswith(_OWNER_SUFFIX)):
            continue
        owner_path = os.path.join(parent, name)
        try:
            owner_fd = os.open(owner_path, os.O_RDWR)
        except FileNotFoundError:  # finished meanwhile
            continue
        try:
            fcntl.flock(owner_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its builder is at work
            os.close(owner_fd)
            continue
        try:
            removed += _remove_build(owner_path)
        finally:
            os.close(owner_fd)
    return removed
