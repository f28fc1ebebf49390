"""The scorecard (scorecard.py's summary document) as one self-contained HTML page (validate --report).

Nothing in the page is fetched: styles, the script that sorts and filters the check table, the summary
as JSON and the charts are all inline. Charts are matplotlib SVG, made reproducible (a fixed
svg.hashsalt, no date, metadata dropped), so the same summary gives the same bytes. The page is a jinja2
template with autoescaping on: patient ids and messages come from the export and are escaped like any
other text; only the SVG that matplotlib wrote (which escapes its own text) is inserted as markup.
"""

from __future__ import annotations

import io
import re

import jinja2
import matplotlib
from matplotlib.figure import Figure

from .scorecard import CATEGORY_ORDER

#: Colours of a check's status in charts (the same names the page's stylesheet uses).
STATUS_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "not-applicable": "#9e9e9e"}
BAR_COLOUR = "#1565c0"
#: rc settings that make matplotlib's SVG the same bytes on every run, and keep text as text.
SVG_RC = {"svg.hashsalt": "neuropathy-kg", "svg.fonttype": "none", "text.parse_math": False,
          "font.family": "DejaVu Sans", "font.size": 9}
SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg)", re.S)
SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(SVG_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return SVG_METADATA.sub("", SVG_PROLOGUE.sub("", buffer.getvalue()))


def _figure(rows: int) -> Figure:
    with matplotlib.rc_context(SVG_RC):
        return Figure(figsize=(6.4, 0.8 + 0.28 * max(rows, 1)), layout="constrained")


def category_chart(checks: list[dict]) -> str:
    """Failing share of each check of a category (bars coloured by status) against its threshold (marks)."""
    with matplotlib.rc_context(SVG_RC):
        figure = _figure(len(checks))
        axes = figure.add_subplot()
        labels = [c["id"] for c in checks][::-1]
        shares = [0 if c["passRate"] is None else 100 * (1 - c["passRate"]) for c in checks][::-1]
        colours = [STATUS_COLOURS[c["status"]] for c in checks][::-1]
        positions = range(len(labels))
        axes.barh(positions, shares, color=colours)
        axes.scatter([100 * c["threshold"] for c in checks][::-1], positions, marker="|", s=160, color="black",
                     zorder=3, label="threshold")
        axes.set_yticks(list(positions), labels)
        axes.set_xlabel("failing patients, % of applicable")
        axes.set_xlim(0, max([5.0, *shares, *(100 * c["threshold"] for c in checks)]) * 1.1)
        figure.legend(loc="outside upper right", frameon=False)
        axes.spines[["top", "right"]].set_visible(False)
        return _svg(figure)


def distribution_chart(counts: dict[str, int], xlabel: str) -> str:
    with matplotlib.rc_context(SVG_RC):
        figure = _figure(len(counts))
        axes = figure.add_subplot()
        labels = list(counts)[::-1]
        axes.barh(range(len(labels)), [counts[k] for k in labels], color=BAR_COLOUR)
        axes.set_yticks(list(range(len(labels))), labels)
        axes.set_xlabel(xlabel)
        axes.spines[["top", "right"]].set_visible(False)
        return _svg(figure)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("neuropathy_kg", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_report(summary: dict) -> str:
    """The HTML page of a summary document."""
    categories = []
    for category in CATEGORY_ORDER:
        checks = [c for c in summary["checks"] if c["category"] == category]
        if checks:
            categories.append({"name": category, "checks": checks, "chart": category_chart(checks),
                               "counts": next(c for c in summary["categories"] if c["category"] == category)})
    distributions = summary["distributions"]
    charts = [
        ("Phenotypes", distribution_chart(distributions["phenotypes"], "patients")),
        ("Renal bands (creatinine clearance, mL/min)", distribution_chart(distributions["renalBands"], "patients")),
        ("Actions derived", distribution_chart(distributions["actions"], "patients with the action")),
        ("Check populations (denominators)", distribution_chart(distributions["populations"], "patients")),
    ]
    template = _environment().get_template("scorecard.html.j2")
    return template.render(summary=summary, categories=categories, distribution_charts=charts,
                           baseline=summary.get("baseline"), provenance=summary["provenance"])
