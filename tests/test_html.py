"""report.html and index.html: parsed back, every figure and link resolves to a file of the run and
every table of the Markdown is there, cell for cell."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from experiments import lr_sweep, reproduce
from jaxlabs.html import render

TINY = ["--n", "60", "--epochs", "30", "--width", "8", "--depth", "2", "--no-progress", "--no-tensorboard"]


class Page(HTMLParser):
    """The images (src, title), links (href) and tables (rows of cell texts) of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.links, self.tables, self.remote = [], [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a["src"], a.get("title")))
        elif tag == "a":
            self.links.append(a["href"])
        elif tag in ("script", "link", "iframe"):
            self.remote.append(tag)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text``: rows of cells (the separator row left out), code spans and
    links as their text."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not re.fullmatch(r"\|[-|: ]+\|", line):
                cells = [re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", c.strip()) for c in line.strip("|").split("|")]
                current.append([re.sub(r"`([^`]*)`", r"\1", c) for c in cells])
        else:
            current = None
    return tables


def check_page(folder: Path, name: str, md_name: str) -> Page:
    page = Page((folder / name).read_text())
    assert not page.remote, "no scripts, stylesheets or frames: nothing loaded from elsewhere"
    for src, title in page.images:  # each figure embedded, byte for byte the PNG beside the page
        kind, data = src.split(",", 1)
        assert kind == "data:image/png;base64"
        assert base64.b64decode(data) == (folder / title).read_bytes(), title
    for href in page.links:
        assert ":" not in href.split("/")[0], href  # no address elsewhere
        assert (folder / unquote(href)).resolve().is_file(), href
    md = (folder / md_name).read_text()
    assert page.tables == markdown_tables(md)  # every table, every cell, in order
    return page


def test_sweep_report_html_has_every_figure_table_and_link(tmp_path):
    out = tmp_path / "run"
    assert lr_sweep.main([*TINY, "--lr", "0.01,0.05", "--seeds", "2", "--tolerance", "1e-3", "--out", str(out)]) == 0
    page = check_page(out, "report.html", "report.md")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert sorted(t for _, t in page.images) == pngs and len(pngs) >= 2
    assert page.tables and page.tables[0][0][0] == "setting"
    text = (out / "report.html").read_text()
    assert "Verdict:" in text and "index.html" not in text  # an ad-hoc sweep has no index to go back to


def test_reproduce_writes_html_reports_linked_from_an_html_index(tmp_path):
    assert reproduce.main(["B-lr", "--quick", "--seeds", "1", "--no-progress", "--no-tensorboard", "--out", str(tmp_path)]) == 0
    index = check_page(tmp_path, "index.html", "index.md")
    assert index.links == ["B-lr/report.html"]
    report = check_page(tmp_path / "B-lr", "report.html", "report.md")
    assert report.links[0] == "../index.html"
    text = (tmp_path / "B-lr" / "report.html").read_text()
    assert "<h2>The report's conclusions</h2>" in text and "Each conclusion is decided over the seeds" in text
    # --report-only rewrites both pages from the saved results
    (tmp_path / "B-lr" / "report.html").unlink()
    assert reproduce.main(["B-lr", "--report-only", "--out", str(tmp_path)]) == 0
    check_page(tmp_path / "B-lr", "report.html", "report.md")


def test_a_missing_figure_is_named_and_markup_in_the_text_is_escaped(tmp_path):
    page = render("# a <b>\n\n![gone.png](gone.png)\n\n[r](x.md) [w](https://example.org)", tmp_path, "t & u")
    assert "[figure gone.png is missing]" in page and "<img" not in page
    assert "a &lt;b&gt;" in page and "<title>t &amp; u</title>" in page
    assert 'href="x.md"' in page  # no x.html beside it: the link stays as written
