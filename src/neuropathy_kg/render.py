"""Text output for people (``--format text``): recommendations, findings, reasoning, interactions and
query tables. JSON stays the contract; these are readings of the same documents.

Every string from patient data is escaped before it reaches a terminal (issue 14, item 9): control
characters (ESC, newline, carriage return, DEL, C1) are written as ``\\xNN``/``\\n`` escapes, so that
a patient id or message cannot move the cursor, clear the screen or forge a line of output. Numbers,
dates and units read alike in every command (``quantity``).
"""

from __future__ import annotations

import io
import re
import textwrap

#: C0 controls, DEL and C1 controls: never written raw.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean(text: object) -> str:
    """``text`` with every control character escaped (\\n, \\r, \\t, else \\xNN)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), str(text))


def _cleaned(value):
    """A document with every string (keys and values, at any depth) escaped."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 patient', '2 patients' (``many`` where the plural is not noun + s)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def number(value: object) -> str:
    """A number as every command writes it: whole numbers without a point, others to at most 2 places."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def quantity(value: object, unit: str = "") -> str:
    """A value with its unit ('68 mL/min', '7.5%', '25 mg'); '%' is written without a space."""
    text = number(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


#: A whole number written with a point ("25.0", as SPARQL writes an xsd:decimal or double), not part of
#: a longer dotted run (a version "0.1.0").
_WHOLE_WITH_POINT = re.compile(r"(?<![\d.])(\d+)\.0+(?![\d.])")


def prose(text: str) -> str:
    """A message or rationale with its numbers as ``number`` writes them: '25.0 mg/day' -> '25 mg/day',
    so that validate's messages (numbers as the shapes' SPARQL writes them) read like recommend's."""
    return _WHOLE_WITH_POINT.sub(r"\1", text)


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)


def _refs(citations: list[str]) -> str:
    return f"[refs {', '.join(citations) or '-'}]"


def dose(dose: dict) -> str:
    unit = dose.get("unit", "")
    parts = [dose.get("drug", "")]
    labels = [("dailyAmount", "{}/day"), ("days", "x {}"), ("totalAmount", "total {}"),
              ("startDailyAmount", "start {}/day"), ("targetDailyAmount", "target {}/day"),
              ("minDailyAmount", "range {}"),
              # a maximum alone bounds the start or target dose: never "target 400 to 1400"
              ("maxDailyAmount", "to {}/day" if "minDailyAmount" in dose else "(at most {}/day)")]
    for key, pattern in labels:
        if key in dose:
            value = plural(dose[key], "day") if key == "days" else quantity(dose[key], unit)
            parts.append(pattern.format(value))
    return " ".join(p for p in parts if p)


def recommendations(document: dict) -> str:
    document = _cleaned(document)
    lines = [f"Guideline {document['guideline']} (version {document['version']}), as of {document['asOf']}", ""]
    for patient in document["patients"]:
        facts = patient["facts"]
        crcl = facts.get("creatinineClearance")
        crcl_text = (f"{quantity(crcl['value'], 'mL/min')} ({crcl['method']}, band {facts['renalBand']})"
                     if crcl else "not recorded")
        scope = "in scope" if patient["inScope"] else "out of scope"
        if facts.get("deceased"):
            scope += ", deceased"
        lines.append(f"Patient {patient['patient']}: {scope}; phenotype {patient['phenotype'] or 'not recorded'}; "
                     f"relapse {yes_no(facts.get('relapse'))}; previous IVIG responder "
                     f"{yes_no(facts.get('previousIvigResponder'))}; CrCl {crcl_text}")
        if not patient["actions"]:
            lines.append("  (no actions)")
        for action in patient["actions"]:
            extra = []
            if "dose" in action:
                extra.append(dose(action["dose"]))
            if "due" in action:
                extra.append(f"due {action['due']}")
            lines.append(f"  - {action['id']:<44} {action['label']}")
            if extra:
                lines.append(f"      {'; '.join(extra)}")
            lines.append(_wrap(f"{prose(action['rationale'])} {_refs(action['citations'])}", "      "))
        for missing in patient["missingData"]:
            lines.append(f"  ! {missing['id']} (needed for {', '.join(missing['neededFor'])})")
        lines.append("")
    return "\n".join(lines).rstrip()


def findings(document: dict, noun: str = "patient") -> str:
    document = _cleaned(document)
    lines = []
    for patient in document["patients"]:
        status = "conforms" if patient["conforms"] else "DOES NOT CONFORM"
        lines.append(f"Patient {patient['patient']}: {status}")
        for finding in patient["findings"]:
            lines.append(f"  {finding['severity'].upper():<9} {finding['id']}")
            lines.append(_wrap(f"{prose(finding['message'])} {_refs(finding['citations'])}", "            "))
        lines.append("")
    verdict = "all conform" if document["conforms"] else "at least one violation"
    lines.append(f"{plural(len(document['patients']), noun)} checked: {verdict}")
    return "\n".join(lines)


def reasoning(document: dict) -> str:
    document = _cleaned(document)
    lines = [f"Knowledge graph {'consistent' if document['consistent'] else 'INCONSISTENT'} (OWL 2 DL, HermiT)"]
    if document["unsatisfiable"]:
        lines.append(f"Unsatisfiable classes: {', '.join(document['unsatisfiable'])}")
    if document.get("inconsistentPatients"):
        lines.append(f"Inconsistent patients: {', '.join(document['inconsistentPatients'])}")
    for patient in document["patients"]:
        lines.append(f"  {patient['patient']:<40} {', '.join(patient['categories']) or '(no category)'}")
    return "\n".join(lines)


def interactions(document: dict) -> str:
    document = _cleaned(document)
    lines = [f"Interactions of {document['guideline']} (version {document['version']}) with the other guideline(s):"]
    for f in document["interactions"]:
        drugs = f["drug"] + (f" / {f['theirDrug']}" if "theirDrug" in f else "")
        effect = f"; {f['interaction']['effect']} [{', '.join(f['interaction']['citations'])}]" if "interaction" in f else ""
        lines.append(f"  {f['kind']:<17} {f['ours']['id']} [{', '.join(f['ours']['citations'])}]  x  "
                     f"{f['theirs']['label'] or f['theirs']['iri']} [{', '.join(f['theirs']['citations'])}]: {drugs}{effect}")
    if not document["interactions"]:
        lines.append("  (none)")
    return "\n".join(lines)


def table(columns: list[str], rows: list[list[str]]) -> str:
    """A text table (rich), the columns in the order given, every cell escaped; no colour, no wrapping."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    columns = [clean(c) for c in columns]
    rows = [[clean(cell) for cell in row] for row in rows]
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(Text(column), no_wrap=True)
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    widths = [max([len(column)] + [len(row[i]) for row in rows]) for i, column in enumerate(columns)]
    out = io.StringIO()
    Console(file=out, width=sum(widths) + 3 * len(widths) + 4, color_system=None, markup=False, emoji=False, highlight=False,
            force_terminal=False, soft_wrap=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")
