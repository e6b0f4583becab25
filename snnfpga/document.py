"""A tiny document model rendered to Markdown (figures as PNG files) and to self-contained
HTML (figures embedded as base64 PNG). Deterministic: no timestamps.

Blocks: ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
``("figure", name, png_bytes, caption)``, ``("code", text)``, ``("list", items)``.
Inline markup in text: ``code`` in backticks and **bold** only.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = ("body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "table{border-collapse:collapse;margin:0.8rem 0}th,td{border:1px solid #bbb;padding:0.25rem 0.6rem;"
         "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
         "code,pre{background:#f4f4f4;padding:0.1rem 0.3rem}pre{padding:0.6rem;overflow-x:auto}"
         "figure{margin:1rem 0}figcaption{font-size:0.9rem;color:#555}img{max-width:100%}")


def _inline_html(text: str) -> str:
    out = html.escape(str(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _cell_md(value) -> str:
    return str(value).replace("|", "\\|")


def to_markdown(blocks: list[tuple], figures_dir: str = "figures") -> str:
    parts = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            parts.append(block[1])
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "code":
            parts.append("```\n" + block[1].rstrip("\n") + "\n```")
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_cell_md(h) for h in header) + " |",
                     "| " + " | ".join("---" for _ in header) + " |"]
            lines += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in rows]
            parts.append("\n".join(lines))
        elif kind == "figure":
            name, caption = block[1], block[3]
            parts.append(f"![{caption}]({figures_dir}/{name}.png)\n\n*{caption}*")
        else:
            raise ValueError(f"unknown block {kind!r}")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: list[tuple], title: str) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "code":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(block[2]).decode()
            parts.append(f"<figure><img alt=\"{html.escape(block[3])}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{_inline_html(block[3])}</figcaption></figure>")
        else:
            raise ValueError(f"unknown block {kind!r}")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(blocks: list[tuple], out_dir: Path, stem: str, title: str) -> dict[str, Path]:
    """Write ``<stem>.md`` (+ ``figures/*.png``) and ``<stem>.html`` into ``out_dir``."""
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for block in blocks:
        if block[0] == "figure":
            (figures / f"{block[1]}.png").write_bytes(block[2])
    md = out_dir / f"{stem}.md"
    page = out_dir / f"{stem}.html"
    md.write_text(to_markdown(blocks))
    page.write_text(to_html(blocks, title))
    return {"markdown": md, "html": page, "figures": figures}
