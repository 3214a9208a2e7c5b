"""The evaluation as one self-contained HTML page: scores, then every error in context.

Each false positive and false negative is shown in its note with the span
highlighted by displaCy; the page filters by error type, level (span, code,
flag) and item (label, code or flag name), from its menus or from the address
(``report.html#level=span&item=PAIN``), so a link can point at one error class.
No script or style is fetched from anywhere: the page works offline.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
from spacy import displacy

from notecoder.evaluate import Scores, formatted

_CONTEXT = 120
_SCRIPT = """
const rows = () => Array.from(document.querySelectorAll('tr.error'));
function apply() {
  const want = {};
  for (const sel of document.querySelectorAll('select[data-filter]')) {
    if (sel.value) want[sel.dataset.filter] = sel.value;
  }
  let shown = 0;
  for (const row of rows()) {
    const ok = Object.entries(want).every(([k, v]) => row.dataset[k] === v);
    row.hidden = !ok;
    shown += ok ? 1 : 0;
  }
  document.getElementById('shown').textContent = shown;
  const hash = new URLSearchParams(want).toString();
  if (location.hash.slice(1) !== hash) history.replaceState(null, '', hash ? '#' + hash : ' ');
}
function init() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const sel of document.querySelectorAll('select[data-filter]')) {
    const key = sel.dataset.filter;
    const values = [...new Set(rows().map(r => r.dataset[key]))].sort();
    for (const v of values) sel.add(new Option(v, v));
    if (params.get(key)) sel.value = params.get(key);
    sel.addEventListener('change', apply);
  }
  apply();
}
document.addEventListener('DOMContentLoaded', init);
"""
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.error td { text-align: left; vertical-align: top; }
.FP { color: #a40000; font-weight: bold; } .FN { color: #204a87; font-weight: bold; }
.entities { line-height: 2.2 !important; }
"""


def _snippet(text: str, start: int | None, end: int | None, label: str) -> str:
    """The error's context with the span highlighted by displaCy (or the note's opening)."""
    if start is None or end is None or pd.isna(start) or pd.isna(end):
        return html.escape(text[: 2 * _CONTEXT]) + ("..." if len(text) > 2 * _CONTEXT else "")
    start, end = int(start), int(end)
    lo, hi = max(0, start - _CONTEXT), min(len(text), end + _CONTEXT)
    data = {"text": text[lo:hi], "ents": [{"start": start - lo, "end": end - lo, "label": label}]}
    return displacy.render(data, style="ent", manual=True, page=False, jupyter=False)


def render_html(scores: Scores, texts: dict[str, str], title: str = "notecoder evaluation") -> str:
    """The whole report page."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for name, frame in scores.titled_tables():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(formatted(frame).to_html(index=False))
    parts.extend(scores.figures())  # inline SVG (the reliability plot)
    parts.extend(f"<p>{html.escape(line)}</p>" for line in scores.omitted)
    if scores.calibration_missing:
        parts.append(f"<p>{html.escape(scores.calibration_missing)}</p>")
    parts.append("<h2>Errors</h2><p>")
    for key, name in (("type", "type"), ("level", "level"), ("item", "item")):
        parts.append(
            f'<label>{name} <select data-filter="{key}"><option value="">all</option>'
            "</select></label> "
        )
    parts.append(f'<span id="shown">{len(scores.errors)}</span> of {len(scores.errors)} shown</p>')
    parts.append(
        "<table><tr><th>note</th><th>type</th><th>level</th><th>item</th><th>in context</th></tr>"
    )
    for error in scores.errors.itertuples(index=False):
        text = texts.get(error.note_id, "")
        label = f"{error.type} {error.item}"
        parts.append(
            f'<tr class="error" data-type="{html.escape(error.type)}" '
            f'data-level="{html.escape(error.level)}" data-item="{html.escape(str(error.item))}">'
            f'<td>{html.escape(error.note_id)}</td><td class="{error.type}">{error.type}</td>'
            f"<td>{html.escape(error.level)}</td><td>{html.escape(str(error.item))}</td>"
            f"<td>{_snippet(text, error.start, error.end, label)}</td></tr>"
        )
    parts.append("</table>")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


def write_html(scores: Scores, texts: dict[str, str], path: str | Path) -> None:
    """Write the report page to ``path``."""
    Path(path).write_text(render_html(scores, texts), encoding="utf-8")
