"""The run report written from a real smoke run: every picture decodes, every link
resolves, and the confusion matrix agrees with the test split and the Evaluator."""

from __future__ import annotations

import glob
import html.parser
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.contract import CLASS_NAMES, GATE_PREDICTIONS_FILE, IMAGE_SHAPE, TEST_SPLIT
from pipeline import decision, summary
from pipeline.report import writer
from pipeline.report.facts import MISTAKES_SHOWN
from tests.support.data import REPO_ROOT


class _References(html.parser.HTMLParser):
    """The page's image sources, link targets and element ids."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])


def _references(index_path: str) -> _References:
    parser = _References()
    with open(index_path) as page:
        parser.feed(page.read())
    return parser


def _count_records(examples_uri: str, split: str) -> int:
    files = glob.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture(scope="module")
def report(pipeline_run):
    """(index.html path, the facts it was written from, the run it reports on)."""
    config, _ = pipeline_run
    metadata_path = os.path.abspath(config.metadata_path)
    index = writer.write_report(metadata_path, config.pipeline_name, config.output_dir,
                                config.profile)
    with open(os.path.join(os.path.dirname(index), writer.FACTS_FILE)) as facts_file:
        facts = json.load(facts_file)
    return index, facts, summary.latest_run(metadata_path, config.pipeline_name)


def test_the_report_is_the_latest_runs_and_every_picture_decodes(report, pipeline_run):
    config, _ = pipeline_run
    index, facts, run = report
    assert index == os.path.join(writer.report_dir(config.output_dir, run["run_id"]),
                                 writer.INDEX_FILE)
    references = _references(index)
    folder = os.path.dirname(index)
    # The class balance, the curves, the confusion matrix and the mistakes at least.
    assert {writer.CLASS_BALANCE_FILE, writer.CURVES_FILE,
            writer.CONFUSION_MATRIX_FILE} <= set(references.images)
    for source in references.images:
        assert not os.path.isabs(source) and "//" not in source, source
        with Image.open(os.path.join(folder, source)) as image:
            image.load()
            assert image.width > 0 and image.height > 0
    for target in references.links:
        if target.startswith("#"):
            assert target[1:] in references.ids, target
        else:
            assert os.path.isfile(os.path.join(folder, target)), target
    with open(index) as page:
        text = page.read()
    assert "http://" not in text and "https://" not in text  # static, nothing fetched
    assert [c["name"] for c in facts["run"]["components"]] and \
        {c["name"] for c in facts["run"]["components"]} == set(run["components"])
    assert facts["run"]["profile"] == config.profile


def test_the_confusion_matrix_adds_up_to_the_test_split_and_the_evaluators_figures(report):
    _, facts, run = report
    matrix = np.array(facts["evaluation"]["confusion_matrix"])
    examples_uri = run["components"]["Evaluator"]["inputs"]["examples"]
    assert matrix.shape == (len(CLASS_NAMES), len(CLASS_NAMES))
    assert matrix.sum() == _count_records(examples_uri, TEST_SPLIT)
    evaluated = decision.from_run_summary(run)
    assert matrix.sum() == evaluated["example_count"]
    for class_id, name in enumerate(CLASS_NAMES):
        figures = evaluated["per_class"].get(name)
        if figures is None:  # no test image of this class
            assert matrix[class_id].sum() == 0
            continue
        assert matrix[class_id].sum() == figures["count"], name
        assert matrix[class_id, class_id] / figures["count"] == pytest.approx(
            figures["accuracy"], abs=1e-6), name
    assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluated["accuracy"], abs=1e-6)


def test_the_mistakes_shown_are_wrong_and_the_most_confident(report):
    index, facts, run = report
    gate_blessing = run["components"]["RegressionGate"]["outputs"]["gate_blessing"]
    with np.load(os.path.join(gate_blessing, GATE_PREDICTIONS_FILE)) as predictions:
        probabilities = predictions["candidate_probabilities"]
        labels = predictions["label"]
    wrong = probabilities.argmax(axis=1) != labels
    mistakes = facts["evaluation"]["mistakes"]
    assert wrong.any() and len(mistakes) == min(int(wrong.sum()), MISTAKES_SHOWN)
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[-1] >= np.sort(probabilities.max(axis=1)[wrong])[-len(mistakes)] - 1e-6
    for mistake in mistakes:
        assert mistake["predicted"] != mistake["label"]
        with Image.open(os.path.join(os.path.dirname(index), mistake["file"])) as image:
            assert np.asarray(image.convert("RGB")).shape == IMAGE_SHAPE


def _variant(facts: dict, variant: str) -> dict:
    """The real run's facts changed into a run DataGate stopped, or one whose gate
    compared the candidate with a baseline (with and without a finite interval)."""
    import copy

    facts = copy.deepcopy({k: v for k, v in facts.items() if k not in ("model_card", "files")})
    if variant == "blocked":
        facts["training"] = facts["evaluation"] = None
        facts["data"]["anomalies"] = [{
            "component": "LabelDriftValidator", "split": "train_train", "feature": "label",
            "severity": "ERROR", "short": "High Linfty distance between current and previous",
            "description": "The Linfty distance between current and previous is 0.63 (up "
                           "to six significant digits), above the threshold 0.6."}]
        facts["run"]["failed"] = ["DataGate"]
        return facts
    gate = facts["evaluation"]["gate"]
    gate["baseline"] = {"model": "/baseline/model", "accuracy": 0.25}
    gate["comparison"] = {
        "candidate_only_correct": 7, "baseline_only_correct": 3, "accuracy_difference": 0.04,
        "p_value": 0.17, "confidence": 0.95, "tolerance": 0.005, "regression": False,
        "difference_interval": None if variant == "unbounded" else [-0.012, 0.092]}
    return facts


@pytest.mark.parametrize("variant", ["blocked", "compared", "unbounded"])
def test_a_blocked_run_and_a_paired_comparison_read_on_the_page(report, variant):
    from pipeline.report import facts as run_facts
    from pipeline.report.model_card import model_card
    from pipeline.report.render import render

    _, real_facts, _ = report
    facts = _variant(real_facts, variant)
    facts["verdict"] = run_facts._verdict(facts)

    page = render(facts, model_card(facts), real_facts["files"])

    if variant == "blocked":
        assert facts["verdict"].startswith("Stopped before training by 1 data anomaly")
        assert "No model was trained in this run." in page
        assert "above the threshold 0.6" in page and "LabelDriftValidator" in page
    else:
        assert "7 right only by the candidate" in page and "3 right only by the baseline" in page
        assert "+4.00 pts" in page and "this is none." in page
        assert ("no finite 95% interval" in page) == (variant == "unbounded")
        assert ("-1.20 pts to +9.20 pts" in page) == (variant == "compared")


def _run_report_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "report", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_the_report_command_writes_the_latest_report_again(report, pipeline_run):
    config, _ = pipeline_run
    index, _, _ = report
    os.remove(index)

    result = _run_report_cli("--output-dir", config.output_dir, "--profile", config.profile)

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Report: {index}" in result.stdout
    assert _references(index).images


def test_the_report_command_without_a_run_exits_2_and_writes_nothing(tmp_path):
    result = _run_report_cli("--output-dir", str(tmp_path), "--profile", "smoke")
    assert result.returncode == 2
    assert "no run of pipeline cifar10-resnet9-smoke" in result.stderr
    assert os.listdir(tmp_path) == []


_KILLED_BUILDER = """
import os, sys
from pipeline.report.writer import built_beside
with built_beside(sys.argv[1]) as folder:
    with open(os.path.join(folder, "half-written"), "w") as half:
        half.write("x")
    os.kill(os.getpid(), 9)
"""

_SWEEPER = """
import json, sys
from pipeline.report.writer import remove_abandoned
print(json.dumps(remove_abandoned(sys.argv[1])))
"""


def test_a_folder_whose_builder_died_is_removed_and_one_being_built_is_kept(tmp_path):
    """A builder killed with SIGKILL leaves its folder; the next builder in the same
    place removes it, while a builder still at work (in another process) keeps its."""
    parent = tmp_path / "scores"
    killed = subprocess.run([sys.executable, "-c", _KILLED_BUILDER, str(parent / "a")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    (left,) = [name for name in os.listdir(parent) if not name.endswith(".owner")]
    assert os.listdir(parent / left) == ["half-written"]
    with writer.built_beside(str(parent / "b")) as building:
        assert sorted(os.listdir(parent)) == sorted([os.path.basename(building),
                                                     os.path.basename(building) + ".owner"])
        swept = subprocess.run([sys.executable, "-c", _SWEEPER, str(parent)], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120)
        assert json.loads(swept.stdout) == [] and os.path.isdir(building)
    assert os.listdir(parent) == ["b"]
