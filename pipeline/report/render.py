"""The report pages through the package's jinja2 templates: a run's facts, and the drift
of served traffic (`python -m pipeline monitor`)."""

from __future__ import annotations

from typing import Optional

TEMPLATE = "index.html.j2"


def _percent(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _points(value: Optional[float], digits: int = 2, signed: bool = True) -> str:
    """An accuracy difference in percentage points (signed: with its sign)."""
    return "–" if value is None else f"{100 * value:{'+' if signed else ''}.{digits}f} pts"


def _thousands(value) -> str:
    return "–" if value is None else f"{value:,}"


def render_template(template: str, **context) -> str:
    """The HTML of one of the package's jinja2 templates."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(percent=_percent, points=_points, thousands=_thousands)
    return environment.get_template(template).render(**context)


def render(facts: dict, model_card: dict, files: dict) -> str:
    """The HTML of the run's page. `files` names the pictures and pages beside it (None
    where there is none)."""
    return render_template(TEMPLATE, facts=facts, card=model_card, files=files)
