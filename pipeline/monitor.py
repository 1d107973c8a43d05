"""`python -m pipeline monitor`: drift between what a served version is asked and what
it was trained and evaluated on.

It reads the request log (`serve --log-requests`, or the logging proxy in front of TF
Serving), takes the records of one served version (the newest that answered, unless
`--version` names one), follows that version's lineage in ML Metadata back to its
Transform graph and its test-split predictions, and compares
(`components.monitoring.traffic_drift`). It writes
`<output dir>/reports/monitor-<UTC time>-v<version>/` (index.html with the charts
side by side, monitor.json with every figure) and prints the checks.

A command, not a component of the scheduled run: it judges the model being served,
which a retraining run does not change until its end, and it must run on its own
schedule (hourly, say) against a log that grows between runs. It reads only: nothing
served, pushed or recorded in ML Metadata changes.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from typing import Optional

from components.console import UserError
from components.contract import CLASS_NAMES
from components.monitoring import traffic_drift
from components.monitoring.served_traffic import (read_records, served_images,
                                                  versions_logged)
from pipeline.report import charts
from pipeline.report.render import render_template
from pipeline.report.writer import INDEX_FILE, REPORTS_DIR, built_beside, unused_path
from pipeline.served_lineage import served_lineage

SUMMARY_FILE = "monitor.json"
CLASSES_CHART = "predicted_classes.png"
CONFIDENCE_CHART = "confidence.png"
CHANNELS_CHART = "channels.png"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_SECONDS_PER = {"m": 60, "h": 3600, "d": 86400}


class MonitorError(UserError, ValueError):
    """Input the monitor cannot judge: no log, no such version, no recorded push."""


def parse_since(text: str, now: Optional[float] = None) -> float:
    """Seconds since the epoch from `--since`: a duration back from now (90m, 6h, 2d)
    or an ISO date or time (UTC unless it names a zone)."""
    expected = "expected a duration (90m, 6h, 2d) or an ISO date or time (2026-12-06, " \
               "2026-12-06T14:00)"
    if not text.strip():
        raise MonitorError(f"--since {text!r}: empty; {expected}")
    if match := _DURATION.match(text.strip()):
        since = (now if now is not None else time.time()) - float(match[1]) * _SECONDS_PER[
            match[2]]
        try:
            datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise MonitorError(f"--since {text!r}: out of range, it reaches back before "
                               f"the year 1") from None
        return since
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitorError(f"--since {text!r}: {expected}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _reference(lineage) -> traffic_drift.Reference:
    from components.evaluation.regression_gate import read_predictions
    from components.transform.preprocessing import channel_statistics

    channel_mean, channel_std = channel_statistics(lineage.transform_graph_uri)
    probabilities = read_predictions(lineage.gate_blessing_uri)["candidate_probabilities"]
    return traffic_drift.Reference(channel_mean, channel_std,
                                   probabilities.argmax(axis=1), probabilities.max(axis=1))


def _report_dir(output_dir: str, version: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return unused_path(os.path.join(output_dir, REPORTS_DIR, f"monitor-{stamp}-v{version}"))


def _write(summary: dict, final_dir: str) -> None:
    """Writes the page, its charts and the JSON, all at once (`built_beside`)."""
    with built_beside(final_dir) as folder:
        files = {}
        if summary["judged"]:
            distributions = summary["distributions"]
            files = {"classes": CLASSES_CHART, "confidence": CONFIDENCE_CHART,
                     "channels": CHANNELS_CHART}
            charts.grouped_bars(distributions["predicted_class_counts"], list(CLASS_NAMES),
                                "% predicted", os.path.join(folder, CLASSES_CHART))
            bins = distributions["confidence_histogram"]["bins"]
            charts.grouped_bars(
                {name: counts for name, counts in distributions["confidence_histogram"].items()
                 if name != "bins"},
                [f"{low:.1f}-{high:.1f}" for low, high in zip(bins[:-1], bins[1:])],
                "% of images", os.path.join(folder, CONFIDENCE_CHART))
            if distributions["channels"]:
                charts.channel_statistics_chart(distributions["channels"],
                                          os.path.join(folder, CHANNELS_CHART))
            else:
                del files["channels"]
        with open(os.path.join(folder, SUMMARY_FILE), "w") as summary_file:
            json.dump(summary, summary_file, indent=2)
        with open(os.path.join(folder, INDEX_FILE), "w") as page:
            page.write(render_template("monitor.html.j2", summary=summary, files=files))


def monitor(config, requests_dir: str, since_secs: Optional[float] = None,
            version: Optional[int] = None) -> dict:
    """Judges the logged traffic of one served version; returns the summary (also in
    the report folder, whose page is `summary["report"]`)."""
    model_name = config.push.model_name
    logged = read_records(requests_dir, since_secs, model_name)
    since = f" since {_utc(since_secs)}" if since_secs is not None else ""
    if not logged.records:
        unreadable = (f", {len(logged.unreadable)} of them unreadable: "
                      f"{'; '.join(logged.unreadable[:5])}" if logged.unreadable else "")
        raise MonitorError(f"{requests_dir}: no logged requests to model {model_name!r}"
                           f"{since} ({logged.files} request files{unreadable})")
    versions = versions_logged(logged.records)
    if version is None:
        version = max(versions)
    elif version not in versions:
        raise MonitorError(f"--version {version}: no logged request{since} was answered by "
                           f"it (logged versions: {', '.join(map(str, sorted(versions)))})")
    version_dir = os.path.join(config.serving_model_base_path, str(version))
    lineage = served_lineage(os.path.abspath(config.metadata_path), version_dir)
    if lineage is None:
        raise MonitorError(
            f"version {version}: {os.path.abspath(config.metadata_path)} records no push to "
            f"{os.path.abspath(version_dir)} (are --profile and --output-dir those of the "
            f"pipeline that pushed it?)")
    records = [record for record in logged.records
               if record.log_metadata.model_spec.version.value == version]
    served = served_images(records)
    times = [record.log_metadata.timestamp_secs for record in records]
    summary = {
        "model_name": model_name, "version": version,
        "version_dir": lineage.version_dir, "requests_dir": os.path.abspath(requests_dir),
        "checked_at": _utc(time.time()), "since": since_secs,
        "first_logged": _utc(min(times)), "last_logged": _utc(max(times)),
        "records": len(records), "images": len(served), "signatures": served.signatures,
        "other_versions": {str(other): count for other, count in versions.items()
                           if other != version},
        "unreadable": logged.unreadable,
        "min_images": config.monitoring.min_images,
        "judged": len(served) >= config.monitoring.min_images,
        "lineage": {"model_uri": lineage.model_uri,
                    "transform_graph_uri": lineage.transform_graph_uri,
                    "test_predictions": lineage.test_predictions_path},
        "checks": [], "anomalies": [],
    }
    if summary["judged"]:
        summary.update(traffic_drift.compare(served, _reference(lineage), config.monitoring))
    folder = _report_dir(config.output_dir, version)
    summary["report"] = os.path.join(folder, INDEX_FILE)
    _write(summary, folder)
    return summary


def print_summary(summary: dict, stream) -> None:
    print(f"Served traffic of {summary['model_name']} version {summary['version']}: "
          f"{summary['images']:,} images in {summary['records']:,} logged requests, "
          f"{summary['first_logged']} to {summary['last_logged']}", file=stream)
    for problem in summary["unreadable"]:
        print(f"  unreadable: {problem}", file=stream)
    if not summary["judged"]:
        print(f"Not judged: fewer than {summary['min_images']} images "
              f"(monitoring.min_images)", file=stream)
    for check in summary["checks"]:
        verdict = "DRIFT" if check["anomaly"] else "ok"
        print(f"  {check['check']:<25} {verdict:<6} {check['description']}", file=stream)
    if summary["judged"]:
        print(f"Drift: {', '.join(summary['anomalies'])}" if summary["anomalies"]
              else "No drift found", file=stream)
    print(f"Report: {summary['report']}", file=stream)
