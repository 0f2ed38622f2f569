"""`rlhf report RUN_DIR`: one self-contained HTML page for a run.

RUN_DIR is one stage's output directory or a pipeline root whose subdirectories are stages (a
stage holds metrics.jsonl or eval.json). Per stage the page shows what was recorded: curves drawn
from metrics.jsonl (one chart per metric namespace, alert steps marked), final metric values,
alerts.jsonl, samples.jsonl, eval.json (rendered generically) and eval.md, and config.yaml.

Everything is inline (CSS, charts as data: URIs, no scripts), so the file opens with no network
and can be attached to an issue. Every text read from the run is HTML-escaped: responses are model
output and may hold markup. A missing or damaged file never stops the report; the page says what
is not recorded and which lines it skipped.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import re
from pathlib import Path

STAGE_FILES = ("metrics.jsonl", "eval.json", "alerts.jsonl", "samples.jsonl")
# Pipeline order of stage directories, matched on a substring of the name; others come after.
STAGE_ORDER = ("sft", "reward", "rlhf", "ppo", "eval")
SAMPLE_STEPS = 4  # samples are shown for this many steps, spread from the first to the last
SAMPLE_ROWS = 40
MAX_TEXT = 1500  # characters of one prompt or response shown in a table cell
MAX_ALERT_ROWS = 200

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1240px; padding: 16px 24px; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #444; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.4em; color: #333; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
td.num { text-align: right; font-family: ui-monospace, Menlo, Consolas, monospace; white-space: nowrap; }
td.text { white-space: pre-wrap; max-width: 520px; overflow-wrap: break-word; }
td.nest { padding: 4px; }
table.samples td.text { min-width: 90px; }
table table { font-size: 1em; margin: 0; }
tr.alert-stop td { background: #fde8e8; }
pre { background: #f6f6f8; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 0.85em;
      white-space: pre-wrap; overflow-wrap: break-word; }
figure.chart { display: inline-block; vertical-align: top; margin: 4px 8px 12px 0; }
figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
figure.chart img { max-width: 100%; border: 1px solid #eee; }
.missing { color: #777; font-style: italic; }
.warn { color: #a33; }
.meta { color: #666; font-size: 0.9em; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
"""


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Writes the report of `run_dir` to `output` (default RUN_DIR/report.html) and returns its path."""
    run_dir = Path(run_dir)
    out = Path(output) if output is not None else run_dir / "report.html"
    page = render_report(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def find_stages(run_dir: str | Path) -> list[Path]:
    """RUN_DIR itself if it is a stage, then its stage subdirectories in pipeline order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such directory")
    subs = sorted((d for d in run_dir.iterdir() if d.is_dir() and _is_stage(d)), key=_stage_rank)
    stages = ([run_dir] if _is_stage(run_dir) else []) + subs
    if not stages:
        raise FileNotFoundError(
            f"{run_dir}: no metrics.jsonl or eval.json in it or in any subdirectory; "
            "give a stage's output directory (e.g. models/sft_model) or a pipeline's root (e.g. models/demo)"
        )
    return stages


def _is_stage(path: Path) -> bool:
    return any((path / name).is_file() for name in STAGE_FILES)


def _stage_rank(path: Path) -> tuple[int, str]:
    name = path.name.lower()
    return next((i for i, key in enumerate(STAGE_ORDER) if key in name), len(STAGE_ORDER)), name


def render_report(run_dir: str | Path) -> str:
    """The report's HTML text."""
    run_dir = Path(run_dir)
    stages = find_stages(run_dir)
    anchors = _anchors(stages, run_dir)
    loaded = [_load_stage(stage) for stage in stages]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>RLHF report: {_esc(run_dir.resolve().name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>RLHF report: {_esc(run_dir.resolve().name)}</h1>",
        f'<p class="meta">{_esc(str(run_dir.resolve()))} &middot; written {when} by <code>rlhf report</code></p>',
        '<section id="overview"><h2>Overview</h2>',
        _overview(stages, anchors, loaded, run_dir),
    ]
    if run_dir not in stages and (run_dir / "config.yaml").is_file():
        # A pipeline root may hold its own resolved config beside the stage directories.
        parts.append(_config_block(run_dir / "config.yaml"))
    parts.append("</section>")
    for stage, anchor, data in zip(stages, anchors, loaded, strict=True):
        parts.append(_stage_section(stage, anchor, data, run_dir))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _anchors(stages: list[Path], run_dir: Path) -> list[str]:
    anchors = []
    for stage in stages:
        base = "stage-" + (
            re.sub(r"[^a-z0-9]+", "-", _stage_name(stage, run_dir).lower()).strip("-") or "run"
        )
        anchor, i = base, 2
        while anchor in anchors:
            anchor, i = f"{base}-{i}", i + 1
        anchors.append(anchor)
    return anchors


def _stage_name(stage: Path, run_dir: Path) -> str:
    return stage.resolve().name if stage == run_dir else stage.name


# ---------------------------------------------------------------------------------------------
# Reading: every reader returns what it could read plus a list of problems, and never raises.


def _load_stage(stage: Path) -> dict:
    metrics, metric_problems = read_jsonl(stage / "metrics.jsonl")
    alerts, alert_problems = read_jsonl(stage / "alerts.jsonl")
    samples, sample_problems = read_jsonl(stage / "samples.jsonl")
    evaluation, eval_problem = read_json(stage / "eval.json")
    return {
        "metrics": metrics, "metric_problems": metric_problems,
        "alerts": alerts, "alert_problems": alert_problems,
        "samples": samples, "sample_problems": sample_problems,
        "eval": evaluation, "eval_problem": eval_problem,
    }  # fmt: skip


def read_jsonl(path: Path) -> tuple[list[dict] | None, list[str]]:
    """(records, problems): None when the file does not exist; bad lines are skipped and named."""
    if not path.is_file():
        return None, []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return None, [f"{path.name}: cannot read ({e})"]
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{path.name} line {number}: invalid JSON ({e.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path.name} line {number}: not a JSON object")
            continue
        records.append(record)
    return records, problems


def read_json(path: Path) -> tuple[object, str | None]:
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace")), None
    except (OSError, json.JSONDecodeError) as e:
        return None, f"{path.name}: cannot read ({e})"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    except OSError:
        return None


def _number(v) -> float | None:
    """A metric value as float; None for anything that is not a number (bools included)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def row_steps(rows: list[dict]) -> list[float]:
    """Each row's "step"; a row without one counts as one step after the row before it."""
    steps, last = [], 0.0
    for row in rows:
        step = _number(row.get("step"))
        last = step if step is not None else last + 1
        steps.append(last)
    return steps


def metric_series(rows: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """metric name -> (steps, values), in file order; non-numeric values are left out."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for step, row in zip(row_steps(rows), rows, strict=True):
        for key, value in row.items():
            value = _number(value)
            if key == "step" or value is None:
                continue
            steps, values = series.setdefault(key, ([], []))
            steps.append(step)
            values.append(value)
    return series


def namespace(metric: str) -> str:
    return metric.split("/", 1)[0] if "/" in metric else "other"


# ---------------------------------------------------------------------------------------------
# Sections


def _overview(stages: list[Path], anchors: list[str], loaded: list[dict], run_dir: Path) -> str:
    rows = []
    for stage, anchor, data in zip(stages, anchors, loaded, strict=True):
        metrics, alerts, samples = data["metrics"], data["alerts"], data["samples"]
        steps = sorted(set(row_steps(metrics or [])))
        logged = f"{len(metrics)} rows, steps {_fmt(steps[0])} to {_fmt(steps[-1])}" if steps else "empty"
        rows.append([
            f'<a href="#{anchor}">{_esc(_stage_name(stage, run_dir))}</a>',
            _esc(str(stage)),
            _missing("not recorded") if metrics is None else logged,
            _missing("not recorded") if alerts is None else str(len(alerts)),
            _missing("not recorded") if samples is None else str(len(samples)),
            "yes" if data["eval"] is not None else _missing("not recorded"),
        ])  # fmt: skip
    return _table(["stage", "directory", "metrics", "alerts", "samples", "eval.json"], rows)


def _stage_section(stage: Path, anchor: str, data: dict, run_dir: Path) -> str:
    metrics, alerts = data["metrics"], data["alerts"] or []
    parts = [
        f'<section class="stage" id="{anchor}">',
        f"<h2>Stage: {_esc(_stage_name(stage, run_dir))}</h2>",
        f'<p class="meta">{_esc(str(stage))}</p>',
        f'<h3 id="{anchor}-curves">Curves</h3>',
    ]
    parts += _problems(data["metric_problems"])
    if metrics is None:
        parts.append(_missing("not recorded (no metrics.jsonl)"))
    elif not metric_series(metrics):
        parts.append(_missing("metrics.jsonl holds no numeric metric"))
    else:
        if alerts:
            parts.append('<p class="meta">Red dashed lines: steps with an alert; a red cross marks the value that '
                         "raised it.</p>")  # fmt: skip
        for ns, png in charts(metrics, alerts):
            figure = (f'<figure class="chart"><figcaption>{_esc(ns)}</figcaption><img alt="{_esc(ns)} metrics by '
                      f'step" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></figure>')  # fmt: skip
            # Wall-clock curves matter least: folded away.
            parts.append(
                f"<details><summary>{ns}/* charts</summary>{figure}</details>" if ns == "time" else figure
            )
        parts.append(f'<h3 id="{anchor}-metrics">Final metric values</h3>')
        parts.append(_metric_table(metrics))
    parts.append(f'<h3 id="{anchor}-alerts">Alerts</h3>')
    parts += _problems(data["alert_problems"])
    parts.append(_alerts_table(data["alerts"]))
    parts.append(f'<h3 id="{anchor}-samples">Samples</h3>')
    parts += _problems(data["sample_problems"])
    parts.append(_samples_table(data["samples"]))
    parts.append(f'<h3 id="{anchor}-evaluation">Evaluation</h3>')
    if data["eval_problem"]:
        parts += _problems([data["eval_problem"]])
    elif data["eval"] is None:
        parts.append(_missing("not recorded (no eval.json)"))
    else:
        parts.append(render_value(data["eval"]))
    eval_md = _read_text(stage / "eval.md")
    if eval_md is not None:
        parts.append(f"<h4>eval.md</h4><pre>{_esc(eval_md)}</pre>")
    parts.append(f'<h3 id="{anchor}-config">Config</h3>')
    parts.append(_config_block(stage / "config.yaml"))
    parts.append("</section>")
    return "\n".join(parts)


def charts(rows: list[dict], alerts: list[dict]) -> list[tuple[str, bytes]]:
    """One PNG per metric namespace, a panel per metric, x = step; alert steps drawn as red lines."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.ticker import MaxNLocator

    series = metric_series(rows)
    if not series:
        return []
    namespaces: dict[str, list[str]] = {}
    for name in series:
        namespaces.setdefault(namespace(name), []).append(name)
    order = sorted(namespaces, key=lambda ns: (ns in ("time", "other"), ns))
    alert_steps = sorted({s for a in alerts if (s := _number(a.get("step"))) is not None})
    # One x range for every chart of the stage, so a metric logged once (an eval) sits where it was logged.
    every = [s for steps, _ in series.values() for s in steps] + alert_steps
    lo, hi = min(every), max(every)
    pad = (hi - lo) * 0.03 or 1.0
    out = []
    for ns in order:
        names = sorted(namespaces[ns])
        cols = min(3, len(names))
        nrows = math.ceil(len(names) / cols)
        fig = Figure(figsize=(4.2 * cols, 2.7 * nrows), dpi=90)
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        for ax, name in zip(axes, names, strict=False):
            steps, values = series[name]
            values = [v if math.isfinite(v) else math.nan for v in values]  # inf would wreck the axis
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, lw=1.4, color="#1f5fa8")
            for s in alert_steps:
                ax.axvline(s, color="#d62728", ls="--", lw=0.9, alpha=0.5)
            hits = [(s, v) for a in alerts if a.get("metric") == name
                    and (s := _number(a.get("step"))) is not None and (v := _number(a.get("value"))) is not None]  # fmt: skip
            if hits:
                ax.plot(*zip(*hits, strict=True), "x", color="#d62728", ms=8, mew=2)
            ax.set_xlim(lo - pad, hi + pad)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.ticklabel_format(axis="y", useOffset=False)  # 10.7766 reads better than 1e-5 + 1.0776e1
            ax.set_title(name, fontsize=10)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        fig.supxlabel("step", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out.append((ns, buf.getvalue()))
    return out


def _metric_table(rows: list[dict]) -> str:
    body = []
    for name, (steps, values) in sorted(
        metric_series(rows).items(), key=lambda kv: (namespace(kv[0]) == "time", kv[0])
    ):
        finite = [v for v in values if math.isfinite(v)]
        body.append([
            _esc(name), _fmt(values[-1]), _fmt(steps[-1]),
            _fmt(min(finite)) if finite else "", _fmt(max(finite)) if finite else "",
            _fmt(len(values)) + ("" if len(finite) == len(values) else f" ({len(values) - len(finite)} not finite)"),
        ])  # fmt: skip
    return _table(["metric", "last", "at step", "min", "max", "points"], body)


def _alerts_table(alerts: list[dict] | None) -> str:
    if alerts is None:
        return _missing("not recorded (no alerts.jsonl)")
    if not alerts:
        return "<p>No alerts were raised.</p>"
    keys = ["step", "rule", "metric", "value", "threshold", "action", "message"]
    rows = []
    for a in alerts[:MAX_ALERT_ROWS]:
        cells = [_cell(a.get(k)) for k in keys]
        rows.append((cells, "alert-stop" if str(a.get("action", "")).lower() == "stop" else ""))
    note = (
        f'<p class="meta">Showing the first {MAX_ALERT_ROWS} of {len(alerts)}.</p>'
        if len(alerts) > MAX_ALERT_ROWS
        else ""
    )
    return (
        f"<p>{len(alerts)} alert{'s' if len(alerts) != 1 else ''}.</p>"
        + note
        + _table(keys, rows, css_class="alerts")
    )


def _samples_table(samples: list[dict] | None) -> str:
    if samples is None:
        return _missing("not recorded (no samples.jsonl)")
    if not samples:
        return _missing("samples.jsonl is empty")
    if any("step" in s for s in samples):
        # Training samples: the first and last steps and evenly spread ones between, to show how
        # responses changed over training.
        sample_steps = row_steps(samples)
        steps = sorted(set(sample_steps))
        n = min(SAMPLE_STEPS, len(steps))
        shown = sorted({steps[round(i * (len(steps) - 1) / max(n - 1, 1))] for i in range(n)})
        picked = [s for step, s in zip(sample_steps, samples, strict=True) if step in shown][:SAMPLE_ROWS]
        head = (f"{len(samples)} samples at {len(steps)} steps; showing {len(picked)} from steps "
                f"{', '.join(_fmt(s) for s in shown)}.")  # fmt: skip
    else:
        # Evaluation samples (no steps): rows spread evenly through the file, so every category shows.
        n = min(SAMPLE_ROWS, len(samples))
        picked = [
            samples[i] for i in sorted({round(i * (len(samples) - 1) / max(n - 1, 1)) for i in range(n)})
        ]
        head = f"{len(samples)} samples; showing {len(picked)} spread through the file."
    # A column for the step, each text field (prompt, response, category, ...), score and kl; every
    # other field (per-example metrics) as "name = value" lines in one last column, so the table fits.
    present = list(dict.fromkeys(k for s in picked for k in s))
    texts = [k for k in present if k != "step" and any(isinstance(s.get(k), str) for s in picked)]
    keys = [k for k in ("step", *texts, "score", "kl") if k in present]
    others = [k for k in present if k not in keys]
    rows = [[_cell(s.get(k)) for k in keys] for s in picked]
    if others:
        for row, sample in zip(rows, picked, strict=True):
            row.append(
                "\n".join(f"{_esc(k)} = {_cell(sample[k])}" for k in others if sample.get(k) is not None)
            )
    header = keys + (["other fields"] if others else [])
    return f"<p>{head} All are in samples.jsonl.</p>" + _table(header, rows, css_class="samples")


def _config_block(path: Path) -> str:
    text = _read_text(path)
    if text is None:
        return _missing(f"not recorded (no {path.name})")
    return f"<details><summary>{_esc(path.name)} ({len(text.splitlines())} lines)</summary><pre>{_esc(text)}</pre></details>"


# ---------------------------------------------------------------------------------------------
# Generic rendering of eval.json. Sibling dicts with the same (dotted) keys become one matrix table
# (train vs eval, or one row per model with helpfulness.score, helpfulness.ci, ...); other entries
# become key/value rows; lists of dicts become tables; anything deeper nests.

MATRIX_COLUMNS = 8  # more dotted keys than this: one row per key, one column per sibling


def render_value(value) -> str:
    if isinstance(value, dict):
        return _render_dict(value) if value else _missing("empty")
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            return _table([str(c) for c in columns], [[_cell(v.get(c)) for c in columns] for v in value])
        if all(_is_scalar(v) for v in value):
            return _short_list(value)
        return "<ol>" + "".join(f"<li>{render_value(v)}</li>" for v in value) + "</ol>"
    return _cell(value)


def _render_dict(value: dict) -> str:
    groups: dict[frozenset, list] = {}
    flat = {k: f for k, v in value.items() if isinstance(v, dict) and (f := _flatten(v))}
    for k, f in flat.items():
        groups.setdefault(frozenset(f), []).append(k)
    matrices = {g[0]: g for g in groups.values() if len(g) >= 2}
    in_matrix = {k for g in matrices.values() for k in g}
    parts, pending = [], []
    for k, v in value.items():
        if k in matrices:
            if pending:
                parts.append(_table(None, pending))
                pending = []
            parts.append(_matrix({m: flat[m] for m in matrices[k]}))
        elif k not in in_matrix:
            pending.append([f"<b>{_esc(str(k))}</b>", render_value(v)])
    if pending:
        parts.append(_table(None, pending))
    return "".join(parts)


def _matrix(rows: dict[str, dict]) -> str:
    columns = list(next(iter(rows.values())))
    if len(columns) > MATRIX_COLUMNS and len(columns) > len(rows):
        body = [[f"<b>{_esc(c)}</b>"] + [_cell(r[c]) for r in rows.values()] for c in columns]
        return _table([""] + [str(k) for k in rows], body)
    body = [[f"<b>{_esc(str(k))}</b>"] + [_cell(r[c]) for c in columns] for k, r in rows.items()]
    return _table([""] + columns, body)


def _flatten(d: dict, prefix: str = "") -> dict | None:
    """Nested dict -> {dotted key: value} when every leaf fits one cell; None otherwise."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            sub = _flatten(v, key + ".")
            if sub is None:
                return None
            out.update(sub)
        elif _is_flat(v):
            out[key] = v
        else:
            return None
    return out


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _is_flat(v) -> bool:
    """A scalar or a short list of scalars (a confidence interval): fits one table cell."""
    return _is_scalar(v) or (isinstance(v, list) and len(v) <= 4 and all(_is_scalar(x) for x in v))


def _short_list(values: list, limit: int = 20) -> str:
    shown = ", ".join(_fmt(v) if not isinstance(v, str) else _esc(v) for v in values[:limit])
    more = f", &hellip; ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


# ---------------------------------------------------------------------------------------------
# HTML pieces


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _fmt(v) -> str:
    """A number as a reader wants it: integers whole, floats to 4 significant digits."""
    if v is None:
        return "&mdash;"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        if abs(v) >= 1e6 or abs(v) < 1e-4:
            return f"{v:.3e}"
        return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.4g}"
    return _esc(str(v))


def _cell(v) -> str:
    """Table cell content; text is escaped and cut to MAX_TEXT characters."""
    if isinstance(v, str):
        cut = v[:MAX_TEXT] + (f"… ({len(v) - MAX_TEXT} more characters)" if len(v) > MAX_TEXT else "")
        return _esc(cut)
    if isinstance(v, (dict, list)):
        return render_value(v)
    return _fmt(v)


def _table(header: list[str] | None, rows: list, css_class: str = "") -> str:
    """rows: lists of cell HTML, or (cells, row class) pairs. Numeric-looking cells align right."""
    out = [f'<table class="{css_class}">' if css_class else "<table>"]
    if header is not None:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells, row_class = row if isinstance(row, tuple) else (row, "")
        out.append(f'<tr class="{row_class}">' if row_class else "<tr>")
        for cell in cells:
            kind = "num" if re.fullmatch(r"[-+0-9.e]+|nan|inf|-inf|&mdash;", cell) else "text"
            kind = "nest" if cell.startswith(("<table", "<ol")) else kind
            out.append(f'<td class="{kind}">{cell}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _missing(text: str) -> str:
    return f'<p class="missing">{_esc(text)}</p>'


def _problems(problems: list[str]) -> list[str]:
    if not problems:
        return []
    shown = "".join(f"<li>{_esc(p)}</li>" for p in problems[:10])
    more = f"<li>&hellip; and {len(problems) - 10} more</li>" if len(problems) > 10 else ""
    return [f'<div class="warn">Skipped while reading:<ul>{shown}{more}</ul></div>']
