"""`rlhf report`: one self-contained HTML page per run, checked on constructed and real run directories,
and rendered in headless Chromium when it is installed."""

import base64
import html
import importlib.util
import io
import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rlhf.cli import main
from rlhf.report import charts, find_stages, render_value, write_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
RENDER_SCRIPT = ROOT / "scripts" / "render_report.py"
XSS = '<script>alert("pwned")</script> & <img src="http://example.com/x.png">'


class Page(HTMLParser):
    """The parts of a report a reader sees: headings, tables (rows of cell text), images, links."""

    def __init__(self, text: str):
        super().__init__()
        self.headings, self.tables, self.images, self.links, self.tags = [], [], [], [], set()
        self._heading, self._stack, self._cell = None, [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag in ("h1", "h2", "h3"):
            self._heading = ""
        elif tag == "table":
            self._stack.append([])
        elif tag == "tr" and self._stack:
            self._stack[-1].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a":
            self.links.append(attrs.get("href", ""))

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag in ("td", "th") and self._stack and self._cell is not None:
            self._stack[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell += data

    def table_with(self, first_header: str) -> list[list[str]]:
        return next(t for t in self.tables if t and t[0] and t[0][0] == first_header)


def _jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.fixture
def run_dir(tmp_path):
    """A pipeline root as `rlhf pipeline` lays it out: sft_model, reward_model, rlhf_model, eval."""
    root = tmp_path / "demo"
    # Created out of pipeline order: the report must still read sft -> reward -> rlhf -> eval.
    for name in ("eval", "rlhf_model", "sft_model", "reward_model", "notes"):
        (root / name).mkdir(parents=True)
    (root / "notes" / "todo.txt").write_text("not a stage")
    _jsonl(root / "sft_model" / "metrics.jsonl",
           [{"step": s, "loss/train": 3.0 - 0.1 * s, "optim/lr": 2e-5, "epoch": s / 10} for s in range(1, 11)]
           + [{"step": 10, "loss/eval": 2.5, "eval/perplexity": math.exp(2.5)}])  # fmt: skip
    (root / "sft_model" / "config.yaml").write_text("sft:\n  learning_rate: 2.0e-05\n")
    (root / "reward_model" / "eval.json").write_text(json.dumps({
        "train": {"accuracy": 0.93, "margin": 1.511, "ece": 0.1229},
        "eval": {"accuracy": 1.0, "margin": 1.204, "ece": 0.2484},
        "normalisation": {"mean": 0.1024, "std": 0.9125},
    }))  # fmt: skip
    ppo = root / "rlhf_model"
    _jsonl(ppo / "metrics.jsonl", [
        {"step": s, "objective/score": 0.1 * s, "objective/kl": 0.3 * s, "policy/clipfrac": 0.05,
         "response/length": 20 + s, "hacking/distinct_2": 1.0 - 0.05 * s, "time/update": 1.5}
        for s in range(1, 9)
    ])  # fmt: skip
    _jsonl(ppo / "alerts.jsonl", [
        {"step": 5, "rule": "kl_budget", "metric": "objective/kl", "value": 1.5, "threshold": 1.2,
         "action": "warn", "message": "mean KL 1.5 nats is over the budget 1.2"},
        {"step": 7, "rule": "low_diversity", "metric": "hacking/distinct_2", "value": 0.65, "threshold": 0.7,
         "action": "stop", "message": "distinct-2 fell to 0.65 <b>stop</b>"},
    ])  # fmt: skip
    _jsonl(ppo / "samples.jsonl", [
        {"step": s, "prompt": f"prompt {s}-{j}", "response": XSS if j == 0 else f"answer {s}-{j}",
         "score": 0.25 * j, "kl": 0.5}
        for s in range(1, 9) for j in range(2)
    ])  # fmt: skip
    (ppo / "eval.json").write_text(json.dumps({"updates": 8, "held_out": {
        "prompts": 25, "sft_score": 0.343, "ppo_score": 0.45, "kl": 7.6, "win_rate": 0.64,
        "examples": [{"sft": "plain answer", "ppo": "<i>better</i> answer"}]}}))  # fmt: skip
    (ppo / "config.yaml").write_text("ppo:\n  kl_coef: 0.05\n  note: '</pre><script>alert(2)</script>'\n")
    (root / "eval" / "eval.json").write_text(json.dumps({
        "sft": {"helpfulness": {"score": 0.41, "ci": [0.30, 0.52]}, "harmlessness": {"refusal_rate": 0.8, "ci": [0.7, 0.9]}},
        "ppo": {"helpfulness": {"score": 0.55, "ci": [0.44, 0.66]}, "harmlessness": {"refusal_rate": 0.85, "ci": [0.75, 0.92]}},
    }))  # fmt: skip
    (root / "eval" / "eval.md").write_text("| model | helpfulness |\n| ppo <b>x</b> | 0.55 |\n")
    return root


def test_pipeline_report_sections_tables_and_escaping(run_dir):
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text()
    page = Page(text)

    stages = ["sft_model", "reward_model", "rlhf_model", "eval"]
    assert [h for h in page.headings if h.startswith("Stage: ")] == [f"Stage: {s}" for s in stages]
    assert page.headings[:2] == ["RLHF report: demo", "Overview"]
    assert (
        page.headings.count("Curves")
        == page.headings.count("Alerts")
        == page.headings.count("Evaluation")
        == 4
    )
    overview = page.table_with("stage")
    assert [row[0] for row in overview[1:]] == stages
    assert overview[3][3:5] == ["2", "16"]  # rlhf_model: 2 alerts, 16 samples
    assert overview[1][3] == "not recorded" and overview[2][2] == "not recorded"

    alerts = page.table_with("step")  # the first table headed "step" is the alerts table
    assert alerts[0] == ["step", "rule", "metric", "value", "threshold", "action", "message"]
    assert [r[:6] for r in alerts[1:]] == [["5", "kl_budget", "objective/kl", "1.5", "1.2", "warn"],
                                           ["7", "low_diversity", "hacking/distinct_2", "0.65", "0.7", "stop"]]  # fmt: skip
    assert alerts[2][6] == "distinct-2 fell to 0.65 <b>stop</b>"  # shown as text, not markup
    assert 'class="alert-stop"' in text

    samples = next(t for t in page.tables if t[0][:3] == ["step", "prompt", "response"])
    assert len(samples) - 1 == 8  # 4 of 8 steps (first, last, two between) x 2 samples
    assert sorted({r[0] for r in samples[1:]}) == ["1", "3", "6", "8"]
    assert samples[1][2] == XSS  # the exact text survives, escaped
    assert html.escape(XSS, quote=True) in text
    assert "<script" not in text.lower() and "alert(2)</script>" not in text
    assert "script" not in page.tags and "link" not in page.tags

    # Self-contained: nothing is fetched from outside the file.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert all(link.startswith("#") for link in page.links) and page.links
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    # One chart per namespace: sft (eval, loss, optim, other) + rlhf (hacking, objective, policy, response, time).
    assert len(page.images) == 9
    for src in page.images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200

    # eval.json rendered generically: train/eval side by side; models x dotted metrics with CIs.
    rm = page.table_with("")
    assert rm[0] == ["", "accuracy", "margin", "ece"] and rm[2] == ["eval", "1", "1.204", "0.2484"]
    models = next(t for t in page.tables if t[0][1:2] == ["helpfulness.score"])
    assert models[0] == [
        "",
        "helpfulness.score",
        "helpfulness.ci",
        "harmlessness.refusal_rate",
        "harmlessness.ci",
    ]
    assert models[2] == ["ppo", "0.55", "[0.44, 0.66]", "0.85", "[0.75, 0.92]"]
    assert ["win_rate", "0.64"] in [r for t in page.tables for r in t]
    assert "| ppo &lt;b&gt;x&lt;/b&gt; | 0.55 |" in text  # eval.md, preformatted and escaped
    assert text.count("<details><summary>config.yaml") == 2  # sft and rlhf configs; others not recorded
    assert "not recorded (no metrics.jsonl)" in text and "not recorded (no samples.jsonl)" in text


def test_alert_steps_are_drawn_on_the_charts(run_dir):
    rows = [json.loads(line) for line in (run_dir / "rlhf_model" / "metrics.jsonl").read_text().splitlines()]
    alerts = [json.loads(line) for line in (run_dir / "rlhf_model" / "alerts.jsonl").read_text().splitlines()]

    def red_pixels(png: bytes) -> int:
        with Image.open(io.BytesIO(png)) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=int)  # (H, W, 3)
        return int(((rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60)).sum())

    with_alerts, without = dict(charts(rows, alerts)), dict(charts(rows, []))
    assert list(with_alerts) == ["hacking", "objective", "policy", "response", "time"]
    assert all(red_pixels(png) == 0 for png in without.values())
    assert all(red_pixels(png) > 50 for png in with_alerts.values())
    # The alert's own metric also gets a cross at the value that raised it.
    assert red_pixels(with_alerts["objective"]) > red_pixels(with_alerts["policy"])


def test_missing_and_damaged_files_never_stop_the_report(tmp_path):
    stage = tmp_path / "rlhf_model"
    stage.mkdir()
    _jsonl(stage / "metrics.jsonl", [
        {"step": 1, "objective/score": 0.5, "note": "text", "flag": True},
        "{not json", "[1, 2]",
        {"step": 2, "objective/score": float("nan"), "objective/kl": float("inf")},
        {"objective/score": 0.7},  # no step: one after the row before
    ])  # fmt: skip
    (stage / "alerts.jsonl").write_text("")
    (stage / "eval.json").write_text("{truncated")
    out = write_report(stage, tmp_path / "elsewhere" / "r.html")
    assert out == tmp_path / "elsewhere" / "r.html" and not (stage / "report.html").exists()
    text = out.read_text()
    page = Page(text)
    assert "Stage: rlhf_model" in page.headings
    assert "metrics.jsonl line 2: invalid JSON" in text and "metrics.jsonl line 3: not a JSON object" in text
    assert "eval.json: cannot read" in text
    assert "No alerts were raised." in text and "not recorded (no samples.jsonl)" in text
    assert "not recorded (no config.yaml)" in text
    metrics = page.table_with("metric")
    score = next(r for r in metrics if r[0] == "objective/score")
    assert score[1:] == ["0.7", "3", "0.5", "0.7", "3 (1 not finite)"]
    assert ["objective/kl", "inf", "2", "", "", "1 (1 not finite)"] in metrics
    assert not any(r[0] in ("note", "flag") for r in metrics)  # only numbers are metrics


def test_evaluation_samples_without_steps(tmp_path):
    """The evaluation stage's samples.jsonl has no steps: rows spread through the file, per-example
    metrics folded into one column."""
    stage = tmp_path / "eval"
    stage.mkdir()
    rows = [{"category": "helpfulness" if i < 30 else "honesty", "prompt": f"q{i}", "model": f"a{i}",
             "model/reward": i / 4, "choices": None} for i in range(60)]  # fmt: skip
    _jsonl(stage / "samples.jsonl", rows)
    page = Page(write_report(stage).read_text())
    table = next(t for t in page.tables if t[0][:2] == ["category", "prompt"])
    assert table[0] == ["category", "prompt", "model", "other fields"]
    assert len(table) - 1 == 40 and table[1][1] == "q0" and table[-1][1] == "q59"
    assert {r[0] for r in table[1:]} == {"helpfulness", "honesty"}
    assert table[-1][3] == "model/reward = 14.75"  # None fields left out


def test_stage_detection_and_cli(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl or eval.json"):
        find_stages(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "no such directory" in capsys.readouterr().err

    # An ensemble's directory is a stage whose members are stages too.
    (tmp_path / "rm" / "member_1").mkdir(parents=True)
    (tmp_path / "rm" / "member_0").mkdir()
    (tmp_path / "rm" / "eval.json").write_text('{"member_accuracy": [0.9, 0.8]}')
    for m in ("member_0", "member_1"):
        _jsonl(tmp_path / "rm" / m / "metrics.jsonl", [{"step": 1, "loss/train": 0.6}])
    assert [p.name for p in find_stages(tmp_path / "rm")] == ["rm", "member_0", "member_1"]
    assert main(["report", str(tmp_path / "rm"), "--output", str(tmp_path / "out.html")]) == 0
    assert f"report written to {tmp_path / 'out.html'}" in capsys.readouterr().out
    assert "[0.9, 0.8]" in (tmp_path / "out.html").read_text()
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "rm"), "ppo.kl_coef=1"])  # report takes no overrides


def test_render_value_groups_siblings_and_transposes_wide_matrices():
    page = Page(
        render_value({"a": {"x": 1, "y": 2.5}, "note": "<b>", "b": {"x": 3, "y": None}, "c": {"z": 1}})
    )
    assert page.tables[0] == [["", "x", "y"], ["a", "1", "2.5"], ["b", "3", "\u2014"]]
    assert ["note", "<b>"] in page.tables[-1] and ["z", "1"] in page.tables[-2]
    wide = {m: {f"k{i}": i for i in range(10)} for m in ("sft", "ppo")}
    table = Page(render_value(wide)).tables[0]
    assert table[0] == ["", "sft", "ppo"] and len(table) == 11 and table[10] == ["k9", "9", "9"]
    assert Page(render_value([{"p": "q", "n": 1e-7}, {"n": 12345.678}])).tables[0] == [
        ["p", "n"], ["q", "1.000e-07"], ["\u2014", "12345.7"]]  # fmt: skip


def test_report_of_a_real_reward_model_run(tmp_path, capsys):
    out = tmp_path / "run" / "reward_model"
    assert main(["reward", "--config", str(ROOT / "configs" / "tiny.yaml"), "--base_model", "tiny-random",
                 f"reward.data.path={ROOT / 'data' / 'preference_data.json'}", "reward.data.max_records=24",
                 "--output_dir", str(out)]) == 0  # fmt: skip
    assert main(["report", str(tmp_path / "run")]) == 0
    text = (tmp_path / "run" / "report.html").read_text()
    page = Page(text)
    assert "Stage: reward_model" in page.headings
    accuracy = json.loads((out / "eval.json").read_text())["eval"]["accuracy"]
    table = page.table_with("")
    assert table[0][:4] == ["", "accuracy", "margin", "ece"] and table[2][:2] == ["eval", f"{accuracy:.4g}"]
    metric_names = [r[0] for r in page.table_with("metric")[1:]]
    assert {"loss/train", "loss/eval", "eval/accuracy", "optim/lr"} <= set(metric_names)
    assert len(page.images) >= 4  # eval, loss, optim, train, ...
    assert "reward:" in text and "<details><summary>config.yaml" in text


def _load_render_script():
    spec = importlib.util.spec_from_file_location("render_report", RENDER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    png = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, str(RENDER_SCRIPT), str(run_dir), "--png", str(png)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rendered in headless Chromium" in result.stdout
    assert png.stat().st_size > 30_000
    with Image.open(png) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 200  # text, tables and charts, not a blank page
        # The top of the page is the white background, the bottom of the first screen holds content.
        assert image.convert("L").crop((0, 300, 1280, 2400)).getextrema()[0] < 100

    script = _load_render_script()
    dom = script.chromium(str(CHROMIUM), ["--dump-dom", (run_dir / "report.html").as_uri()], timeout=120)
    assert dom.returncode == 0
    headings = script.headings(dom.stdout)
    for expected in ("Overview", "Stage: sft_model", "Stage: rlhf_model", "Stage: eval", "Alerts", "Samples"):
        assert expected in headings
    assert "&lt;script&gt;alert" in dom.stdout and "<script" not in dom.stdout

    # The check can fail: a blank page is refused.
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    result = subprocess.run(
        [sys.executable, str(RENDER_SCRIPT), str(blank)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "blank" in result.stderr
