"""The HTML report: built from result files alone, self-contained, and rendered by a real (headless) browser.

The run folder comes from the three experiments on a tiny random model (a few seconds). The browser check opens
a copy of report.html with a probe script put first in <head>: it counts script errors and console errors, and
on load writes into the DOM what it found (every <img> decoded with its natural width, resource requests made,
the sections present); ``chromium --headless --dump-dom`` then hands that DOM back. Chromium also writes a
screenshot, kept under test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import tiny
from visdepth.data import get_dataset, write_manifest
from visdepth.errors import VisdepthError
from visdepth.report.html import build_report, interchange_depth, relative_loss, settle
from visdepth.report.labels import model_label
from visdepth.report.swap import robust_top

MODEL = "tiny:llava"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
SECTIONS = ("summary", "dynamics", "swap", "truncate", "across", "provenance")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """dynamics (with its random-init baseline), swap and truncate of one tiny model, in one run folder."""
    out = tmp_path_factory.mktemp("runs")
    adapter = tiny(MODEL)
    common = dict(model=MODEL, output_path=str(out), progress=False)
    with pytest.MonkeyPatch.context() as mp:
        # the runs' own figure files are not needed (the report redraws them): skip them to keep the test fast
        for module, plot in (
            ("dynamics", "plot_dynamics"),
            ("swap", "plot_swap"),
            ("truncate", "plot_truncate"),
        ):
            mp.setattr(f"visdepth.report.{module}.{plot}", lambda result, folder: {})
        _run_all(out, adapter, common)
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


def _run_all(out: Path, adapter, common: dict) -> None:
    from visdepth.experiments import dynamics, swap, truncate

    dynamics.run(
        dynamics.DynamicsConfig(data="photos", limit=2, token_cloud="per_sample", baseline=True, **common),
        adapter,
    )
    swap.run(
        swap.SwapConfig(
            data="photos", limit=2, layers="stride:2", max_new_tokens=3, sentence_model=None, **common
        ),
        adapter,
    )
    kinds = ("single_token", "multiple_choice", "exact_match")
    samples = [s for s in get_dataset("photos") if s.kind in kinds]
    manifest = write_manifest(samples, out / "photos.jsonl")
    truncate.run(
        truncate.TruncateConfig(
            tasks=[f"local:{manifest}"], max_new_tokens=4, timing=False, calibration=2, **common
        ),
        adapter,
    )


@pytest.fixture(scope="module")
def report(run_folder, tmp_path_factory) -> Path:
    """``visdepth report`` on a copy at another path: the report needs the result files only."""
    from visdepth.cli import app

    moved = tmp_path_factory.mktemp("moved") / "run"
    shutil.copytree(run_folder, moved)
    result = CliRunner().invoke(app, ["report", str(moved)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == moved / "report.html" and path.is_file()
    return path


class _Refs(HTMLParser):
    """Every URL-bearing attribute and every <script>/<link> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value:
                self.urls.append(value)


def test_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(html)
    assert "link" not in refs.tags and "iframe" not in refs.tags
    external = [u for u in refs.urls if not (u.startswith("data:image/png;base64,") or u.startswith("#"))]
    assert external == []
    assert not re.search(r"url\(|@import|https?://", html.split("<body>")[0])  # nothing fetched by the CSS
    assert html.count("<img ") >= 6


def test_report_content_comes_from_the_numbers(report):
    html = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in html
    for question in ("RQ1", "RQ2", "RQ3"):
        assert question in html
    assert "random init" in html  # the baseline's settling column
    assert "settles at the first layer" in html  # the rule is printed next to the verdict
    assert re.search(r'class="verdict (holds|does-not-hold|mixed|not-testable)"', html)
    assert "RQ1 vs cut" in html and "RQ2 vs cut" in html  # the across-questions table
    assert "tiny:llava" in html and "open choices" in html


def test_any_subset_of_experiments(run_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("visdepth.report.html._figures", lambda *a, **k: [])  # the text is checked here
    only = tmp_path / "only-swap"
    shutil.copytree(run_folder / "swap", only / "swap")
    html = build_report(only).read_text(encoding="utf-8")
    assert "No dynamics results in this run folder" in html
    assert "No truncate results in this run folder" in html
    assert "Needs the truncation results" in html
    broken = tmp_path / "broken"
    (broken / "dynamics").mkdir(parents=True)
    (broken / "dynamics" / "results.json").write_text(json.dumps({"summary": {}, "token_cloud": "pooled"}))
    html = build_report(broken, tmp_path / "elsewhere" / "page.html").read_text(encoding="utf-8")
    assert "could not be used" in html and "DynamicsResult" in html
    with pytest.raises(VisdepthError, match="no results.json"):
        build_report(tmp_path / "elsewhere")


def test_cli_names_a_missing_folder(tmp_path):
    from visdepth.cli import app

    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_rules_on_hand_made_curves():
    assert settle([5.0, 1.0, 1.05, 0.98, 1.0]) == 1  # within 10% of the final value from index 1
    assert settle([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) == 5  # a ramp settles only at its end
    assert settle([1.0, None, 1.0]) == 0 and settle([None, 2.0]) is None
    m = [[1.0, 0.97, 1.0], [0.9, 1.0, 0.99], [0.97, 0.96, 1.0]]  # rows l_a, columns l_b
    assert interchange_depth(m, [0, 2, 4], 0.95) == 2  # column l_b = 0 has a 0.9
    assert interchange_depth(m, [0, 2, 4], 0.999) is None
    assert relative_loss([0.5, 1.0, 1.0]) == pytest.approx(0.25)
    assert relative_loss([0.0, 0.0]) is None
    assert model_label({"name": "/very/long/local/path/to/checkpoints/llava-1.5-7b-hf"}) == "llava-1.5-7b-hf"
    assert model_label({"name": "llava-hf/llava-1.5-7b-hf"}) == "llava-hf/llava-1.5-7b-hf"
    assert len(model_label("x" * 80)) == 32
    kl = np.array([[0.0, 2.0, 110.0], [1.0, 0.0, 8.0], [0.5, 3.0, 0.0]])
    assert robust_top([kl]) < 110 / 2  # one dominating cell does not set the scale


PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push("error: " + (e.message || e.target.src || e.type)), true);
const _consoleError = console.error;
console.error = (...a) => { window.__errors.push("console: " + a.join(" ")); _consoleError(...a); };
window.addEventListener("load", () => {
  const imgs = Array.from(document.images).map(i => ({ok: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
  const requests = performance.getEntriesByType("resource").map(r => r.name).filter(n => !n.startsWith("data:"));
  const sections = Array.from(document.querySelectorAll("section[id]")).map(s => s.id);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({imgs, requests, sections, errors: window.__errors,
    width: document.documentElement.scrollWidth, viewport: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # a request would fail fast instead of hanging
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium(args: list[str], profile: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(profile)}  # no dbus or home-folder state from the machine
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium; CI installs it and never skips this)",
)
@pytest.mark.parametrize("width", [1280, 390])  # a laptop and a phone
def test_report_renders_in_a_browser(report, tmp_path, width):
    assert CHROMIUM, "CI must install chromium (.ci/run does, with apt-get) to test report.html in a browser"
    html = report.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    url = probed.as_uri()
    size = f"--window-size={width},900"
    proc = _chromium([size, "--virtual-time-budget=10000", "--dump-dom", url], tmp_path / "profile-dom")
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"chromium gave no probe output (rc {proc.returncode}): {proc.stderr[-2000:]}"
    import html as html_lib

    found = json.loads(html_lib.unescape(match.group(1)))
    assert found["errors"] == []
    assert found["requests"] == []
    assert found["imgs"] and all(i["ok"] and i["w"] > 0 and i["h"] > 0 for i in found["imgs"]), found["imgs"]
    assert set(SECTIONS) <= set(found["sections"])
    assert found["width"] <= found["viewport"] + 1  # nothing wider than the window: no sideways scrolling
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console == []
    # a screenshot of the top of the page, kept for people
    shot = tmp_path / f"report-{width}.png"
    proc = _chromium(
        [f"--window-size={width},2400", f"--screenshot={shot}", report.as_uri()], tmp_path / "p2"
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    shutil.copy(report, ARTIFACTS / "report.html")
