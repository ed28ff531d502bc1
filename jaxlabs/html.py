"""``report.html`` and ``index.html``: the Markdown of ``report.md`` / ``index.md`` rendered to one
page that opens from disk in any browser, or as an e-mail attachment.

One renderer (markdown-it-py, CommonMark with tables), one source: the HTML is made from the very
text written to the ``.md`` file, so the two never say different things. On top of the Markdown:
each figure is embedded (a ``data:`` URI: the page needs no file beside it) and links to its PNG;
a link to a ``.md`` page that has an ``.html`` twin points to the twin; a wide table scrolls
sideways instead of squeezing its columns; the page has no script and loads nothing from a network.
"""
from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path
from typing import Sequence

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 1200px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #eaeef2; padding-bottom: .2em; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6;
       padding: .1em .35em; border-radius: 4px; overflow-wrap: anywhere; }
.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border: 1px solid #d0d7de; padding: .35em .7em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; white-space: nowrap; }
td { font-variant-numeric: tabular-nums; }
td:first-child { white-space: nowrap; }  /* a setting or study name reads as one word */
tbody tr:nth-child(even) { background: #fafbfc; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
.figure { display: inline-block; margin: .5em 1em 1em 0; text-align: center; font-size: 12px; }
nav { font-size: 14px; margin-bottom: 1em; }
"""


def _renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    rules = md.renderer.rules
    rules["table_open"] = lambda *a: '<div class="table"><table>\n'
    rules["table_close"] = lambda *a: "</table></div>\n"
    return md


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def render(text: str, folder: Path, title: str, nav: Sequence[tuple[str, str]] = ()) -> str:
    """The HTML page of the Markdown ``text`` whose relative links and images are relative to
    ``folder``. An image that is not a file there stays a plain link (a report rewritten after its
    figures were deleted says what is missing rather than failing). ``nav``: (text, href) links
    above the page (e.g. back to the index)."""
    md = _renderer()
    folder = Path(folder)
    tokens = md.parse(text)
    for tok in tokens:
        for child in tok.children or ():
            if child.type == "image":
                src = str(child.attrGet("src") or "")
                name = child.content or src
                path = folder / src
                if not _local(src) or not path.is_file():
                    child.type, child.tag, child.children = "text", "", None
                    child.content = f"[figure {name} is missing]"
                    continue
                child.attrSet("src", _data_uri(path))
                child.attrSet("title", name)
                child.meta = {"file": src, "name": name}
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                twin = href[:-3] + ".html"
                if _local(href) and href.endswith(".md") and (folder / twin).is_file():
                    child.attrSet("href", twin)

    def image(tokens_, idx, options, env):
        tok = tokens_[idx]
        src, alt = html.escape(str(tok.attrGet("src"))), html.escape(tok.meta.get("name", ""))
        file = html.escape(tok.meta.get("file", ""))
        return (f'<span class="figure"><a href="{file}"><img src="{src}" alt="{alt}" title="{alt}"></a>'
                f'<br><a href="{file}">{alt}</a></span>')

    md.renderer.rules["image"] = image
    body = md.renderer.render(tokens, md.options, {})
    links = " · ".join(f'<a href="{html.escape(h)}">{html.escape(t)}</a>' for t, h in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + (f"<nav>{links}</nav>\n" if links else "") + body + "</body>\n</html>\n")


def _local(url: str) -> bool:
    """A path inside the run's folder, not an address elsewhere."""
    return bool(url) and ":" not in url.split("/")[0] and not url.startswith(("/", "#"))
