"""A self-contained HTML report of evaluation results, plus the numbers as JSON and CSV.

:func:`write_report` reads the JSON written by ``veil eval compare`` (``kind: "compare"``)
and ``veil eval video`` (``kind: "video"``) and writes one HTML file with inline CSS and
plots embedded as base64 PNG (matplotlib, Agg backend; the ``report`` extra): nothing is
fetched from elsewhere when it is opened. Next to it: ``<name>.json`` (all inputs merged)
and ``<name>.csv`` (one row per method, the compare table).

Sections: the compare table; privacy vs utility across methods; coverage by face size;
example crops before/after; per-frame timelines of each video result.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InputError, MissingExtraError, OutputError

__all__ = ["load_results", "write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}
img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:4px}
.note{color:#666;font-size:13px}
"""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "report", "veil report") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read result JSON files; each gets a ``_source`` key. ``InputError`` if unreadable."""
    out = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: not a readable results JSON ({exc!r})") from exc
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a JSON object, got {type(data).__name__}")
        out.append({**data, "_source": str(p)})
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _privacy_utility(rows: Sequence[dict[str, Any]]) -> str:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    x = [_num(r.get("within_0.6_worst")) for r in rows]
    panels = [
        ("redetection", "face re-detected (CenterFace)"),
        ("landmark_error", "landmark error / inter-ocular (lower = pose kept)"),
        ("ssim_inside", "SSIM inside the mask"),
    ]
    for ax, (key, label) in zip(axes, panels, strict=True):
        y = [_num(r.get(key)) for r in rows]
        ax.scatter(x, y, c="tab:blue")
        for xi, yi, r in zip(x, y, rows, strict=True):
            if xi == xi and yi == yi:
                ax.annotate(
                    r["method"], (xi, yi), fontsize=8, xytext=(3, 3), textcoords="offset points"
                )
        ax.set_xlabel("identity leakage: share within dlib 0.6 (worst attack)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    fig.suptitle("privacy (left = better) vs utility")
    return _png(fig)


def _coverage_bins(rows: Sequence[dict[str, Any]]) -> str:
    plt = _pyplot()
    bins = ("0-10", "10-20", "20-40", "40-80", "80+")
    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        vals = [_num(r.get(f"recall_{b}")) for b in bins]
        ax.bar(np.arange(len(bins)) + i * width, vals, width, label=r["method"])
    ax.set_xticks(np.arange(len(bins)) + 0.4 - width / 2, [f"{b} px" for b in bins])
    ax.set_ylabel("faces covered (>= 90% of ellipse changed)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, ncol=5)
    ax.set_title("coverage by face height")
    return _png(fig)


def _crop(path: str, box: Sequence[float]) -> np.ndarray | None:
    from veil.io.images import read_image

    try:
        image = read_image(path).image
    except (InputError, OSError):
        return None
    x0, y0, x1, y1 = box
    gx, gy = (x1 - x0) / 2, (y1 - y0) / 2
    h, w = image.shape[:2]
    c0, r0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
    c1, r1 = min(w, int(x1 + gx)), min(h, int(y1 + gy))
    return image[r0:r1, c0:c1]


def _examples(examples: Sequence[dict[str, Any]]) -> str:
    if not examples:
        return ""
    plt = _pyplot()
    names = list(dict.fromkeys(n for e in examples for n in e["outputs"]))
    cols = 1 + len(names)
    fig, axes = plt.subplots(len(examples), cols, figsize=(1.6 * cols, 1.8 * len(examples)))
    axes = np.asarray(axes).reshape(len(examples), cols)
    for row, e in zip(axes, examples, strict=True):
        paths = [e["original"], *[e["outputs"].get(n) for n in names]]
        for ax, title, path in zip(row, ["original", *names], paths, strict=True):
            crop = _crop(path, e["box"]) if path else None
            if crop is not None:
                ax.imshow(crop)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _png(fig)


def _video(result: dict[str, Any]) -> str:
    plt = _pyplot()
    timeline = result.get("timeline", [])
    if not timeline:
        return "<p>no frames</p>"
    idx = [t["index"] for t in timeline]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True)
    a1.plot(idx, [t["changed"] for t in timeline], label="changed share of the frame")
    bare = [t["index"] for t in timeline if t.get("bare")]
    if bare:
        a1.scatter(bare, [0] * len(bare), c="red", marker="|", s=200, label="bare frame")
    a1.legend(fontsize=8)
    a2.step(idx, [t["faces"] for t in timeline], where="mid", label="faces masked")
    a2.set_xlabel("frame")
    a2.legend(fontsize=8)
    keys = ("frames", "tracks", "mask_iou_mean", "mask_iou_min", "identity_drift_mean")
    summary = _table([{k: result.get(k) for k in (*keys, "bare_frame_count")}])
    return summary + _png(fig)


def _rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from veil.evaluate.compare import flat_row

    rows: list[dict[str, Any]] = []
    for r in results:
        if r.get("kind") == "compare":
            rows += [flat_row(row) for row in r.get("rows", [])]
    return rows


def write_report(results: Sequence[dict[str, Any]], out: str | Path) -> list[Path]:
    """Write ``out`` (HTML), ``out.json`` and ``out.csv``; return the three paths."""
    out = Path(out)
    _pyplot()
    rows = _rows(results)
    parts = [f"<h1>veil evaluation report</h1><style>{_CSS}</style>"]
    sources = ", ".join(html.escape(r["_source"]) for r in results if "_source" in r)
    parts.append(f'<p class="note">inputs: {sources or "-"}</p>')
    if rows:
        parts += ["<h2>methods</h2>", _table(rows)]
        parts.append("<h2>privacy vs utility</h2>")
        if any(r.get("within_0.6_worst") is not None for r in rows):
            parts.append(_privacy_utility(rows))
        else:
            parts.append(
                '<p class="note">no identity set given: identity leakage was not measured, '
                "so there is nothing to plot here (run <code>veil eval compare "
                "--identity-set PEOPLE_DIR</code>)</p>"
            )
        if any(r.get("recall") is not None for r in rows):
            parts += ["<h2>coverage by face size</h2>", _coverage_bins(rows)]
    for r in results:
        if r.get("kind") == "compare" and r.get("examples"):
            parts += ["<h2>examples (face box grown 2x)</h2>", _examples(r["examples"])]
    for r in results:
        if r.get("kind") == "video":
            title = html.escape(str(r.get("anonymized", r.get("_source", "video"))))
            parts += [f"<h2>video: {title}</h2>", _video(r)]
    page = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>veil report</title>"
    page += "</head><body>" + "\n".join(parts) + "</body></html>\n"
    paths = [out, out.with_suffix(".json"), out.with_suffix(".csv")]
    try:
        out.write_text(page, encoding="utf-8")
        paths[1].write_text(json.dumps({"results": results, "table": rows}, indent=1) + "\n")
        with paths[2].open("w", newline="", encoding="utf-8") as f:
            keys = list(dict.fromkeys(k for r in rows for k in r)) or ["method"]
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report: {exc}") from exc
    return paths
