"""The report page (see report.py): one static HTML file, inline CSS, no network.

The page reads without JavaScript; a few lines of inline script only make the per-image table
sortable by clicking a column header. Every number cell carries its exact value in ``data-v``
(Python's ``repr``, the same digits as the JSON), which the sorting uses and tests read.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from .. import __version__

_CSS = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1c2230;--muted:#5d6679;--line:#dfe3ea;
--good:#15803d;--bad:#c2410c;--most:#22c55e;--least:#f97316}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#1c2230;color:#fff;padding:18px 0 20px}
header .wrap,main{max-width:1200px;margin:0 auto;padding:0 24px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#b9c0cf}
main{padding-top:20px;padding-bottom:32px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:16px 20px;margin:0 0 18px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px;font-weight:600}
.summary{display:grid;grid-template-columns:1fr auto;gap:8px 28px;align-items:start}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.stats{display:flex;gap:10px}
.stat{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;
text-align:right}
.stat b{display:block;font-size:22px;font-weight:600}
.stat span{color:var(--muted);font-size:12px}
.good{color:var(--good)}.bad{color:var(--bad)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right}
th:first-child,td:first-child{text-align:left}
th{color:var(--muted);font-weight:600;white-space:nowrap}
thead th{cursor:pointer}thead th:hover{color:var(--ink)}
tfoot td{font-weight:600;border-bottom:0}
a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
.image{display:grid;grid-template-columns:250px 1fr;gap:4px 22px}
.image h2{grid-column:1/-1}
.meta{color:var(--muted);margin:8px 0 0;font-size:13px}
.thumb{position:relative;display:inline-block;line-height:0}
.thumb img{max-width:250px;height:auto}
.box{position:absolute;border:2px solid;border-radius:2px}
.box.most{border-color:var(--most)}.box.least{border-color:var(--least)}
.key{display:inline-block;width:10px;height:10px;border:2px solid;margin-right:5px;
vertical-align:-1px}
.key.most{border-color:var(--most)}.key.least{border-color:var(--least)}
.crops h3:first-child{margin-top:0}
.row{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0}
figure img,.compare img{display:block;image-rendering:pixelated;border-radius:3px}
figcaption{font-size:12px;color:var(--muted);padding-top:3px}
figcaption b{color:var(--ink);font-weight:600}
.compare{position:relative;line-height:0}
.compare .before{position:absolute;top:0;left:0;height:100%;width:50%;min-width:6px;
max-width:100%;overflow:hidden;resize:horizontal;border-right:2px solid #fff;
box-shadow:1px 0 0 rgba(0,0,0,.35)}
.compare .before img{max-width:none}
.curve svg{max-width:100%;height:auto}
footer{color:var(--muted);font-size:12px;text-align:center;padding:8px 0 24px}
"""

# Click a header to sort by it (again: reverse). Numbers compare as numbers.
_SCRIPT = """
document.querySelectorAll("table.sortable thead th").forEach(function(th,i){
 th.title="sort";th.addEventListener("click",function(){
  var tb=th.closest("table").tBodies[0],up=th.dataset.dir!=="up";th.dataset.dir=up?"up":"down";
  var rows=Array.prototype.slice.call(tb.rows);
  rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v,
   nx=parseFloat(x),ny=parseFloat(y),c=isNaN(nx)||isNaN(ny)?x.localeCompare(y):nx-ny;
   return up?c:-c;});
  rows.forEach(function(r){tb.appendChild(r);});});});
"""


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _db(v: Any, signed: bool = False) -> str:
    v = _num(v)
    if v is None:
        return "-"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _gain(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    if a is None or b is None or (math.isinf(a) and math.isinf(b)):
        return None
    return a - b


def _cls(gain: float | None) -> str:
    return "" if gain is None or gain == 0 else ("good" if gain > 0 else "bad")


def _cell(v: Any, text: str, cls: str = "") -> str:
    v = _num(v)
    data = "" if v is None else repr(v) if math.isfinite(v) else ("Infinity" if v > 0
                                                                  else "-Infinity")
    attr = f' class="{cls}"' if cls else ""
    return f'<td data-v="{data}"{attr}>{text}</td>'


def _summary(facts: list[tuple[str, str]], result: dict[str, Any]) -> str:
    mean = result["mean"]
    gain = _gain(mean.get("psnr"), mean.get("bicubic_psnr"))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    stats = (f'<div class="stat"><span>model PSNR</span><b>{_db(mean.get("psnr"))}</b>'
             f'<span>SSIM {_ssim(mean.get("ssim"))}</span></div>'
             f'<div class="stat"><span>bicubic PSNR</span><b>{_db(mean.get("bicubic_psnr"))}</b>'
             f'<span>SSIM {_ssim(mean.get("bicubic_ssim"))}</span></div>'
             f'<div class="stat"><span>gain</span><b class="{_cls(gain)}">{_db(gain, True)}</b>'
             f'<span>dB, mean of {result["count"]}</span></div>')
    return (f'<section class="card summary"><dl>{dl}</dl>'
            f'<div class="stats">{stats}</div></section>')


def _ssim(v: Any) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.4f}"


def _table(result: dict[str, Any]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("image", "PSNR dB", "bicubic dB", "gain dB",
                                             "SSIM", "bicubic SSIM", "time s"))
    body = []
    for i, r in enumerate(result["images"], start=1):
        gain = _gain(r["psnr"], r.get("bicubic_psnr"))
        body.append(
            f'<tr data-name="{escape(r["name"])}"><td data-v="{escape(r["name"])}">'
            f'<a href="#img-{i}">{escape(r["name"])}</a></td>'
            + _cell(r["psnr"], _db(r["psnr"])) + _cell(r.get("bicubic_psnr"),
                                                       _db(r.get("bicubic_psnr")))
            + _cell(gain, _db(gain, True), _cls(gain)) + _cell(r["ssim"], _ssim(r["ssim"]))
            + _cell(r.get("bicubic_ssim"), _ssim(r.get("bicubic_ssim")))
            + _cell(r["seconds"], f'{r["seconds"]:.2f}') + "</tr>")
    m = result["mean"]
    gain = _gain(m["psnr"], m.get("bicubic_psnr"))
    foot = (f'<tr><td>mean of {result["count"]}</td><td>{_db(m["psnr"])}</td>'
            f'<td>{_db(m.get("bicubic_psnr"))}</td><td class="{_cls(gain)}">{_db(gain, True)}'
            f'</td><td>{_ssim(m["ssim"])}</td><td>{_ssim(m.get("bicubic_ssim"))}</td>'
            f'<td>{m["seconds"]:.2f}</td></tr>')
    return (f'<section class="card"><h2>Per image <span class="meta">(click a column to sort)'
            f'</span></h2><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody><tfoot>{foot}</tfoot></table></section>')


def _img(src: str, size: int, alt: str) -> str:
    return f'<img src="{escape(src)}" width="{size}" height="{size}" alt="{escape(alt)}">'


def _image_section(i: int, row: dict[str, Any], entry, files: dict, scale: int) -> str:
    gain = _gain(row["psnr"], row.get("bicubic_psnr"))
    w, h = entry.hr_size
    boxes = "".join(
        f'<span class="box {c.kind}" style="left:{100 * c.x / w:.2f}%;top:{100 * c.y / h:.2f}%;'
        f'width:{100 * c.size / w:.2f}%;height:{100 * c.size / h:.2f}%"></span>'
        for c in entry.crops)
    th, tw = entry.thumb.shape[:2]
    thumb = escape(files[entry.name, "thumb"])
    overview = (f'<div><div class="thumb"><img src="{thumb}" width="{tw}" height="{th}" '
                f'alt="{escape(row["name"])}">{boxes}</div>'
                f'<p class="meta">HR {w}x{h} (x{scale}) · PSNR {_db(row["psnr"])} dB, bicubic '
                f'{_db(row.get("bicubic_psnr"))} dB · SSIM {_ssim(row["ssim"])}</p>'
                + ('<p class="meta"><span class="key most"></span>most gain '
                   '<span class="key least" style="margin-left:10px"></span>least gain</p>'
                   if entry.crops else "") + "</div>")
    parts = []
    for c in entry.crops:
        view = c.size * entry.zoom
        label = "Most gain over bicubic" if c.kind == "most" else "Least gain over bicubic"
        g = c.gain if math.isfinite(c.gain) else None
        src = {k: files[entry.name, f"{c.kind}-{k}"] for k in ("hr", "bicubic", "model")}
        parts.append(
            f'<h3><span class="key {c.kind}"></span>{label}: <span class="{_cls(g)}">'
            f'{_db(g, True)} dB</span> <span class="meta">({c.size}x{c.size} px at x={c.x}, '
            f'y={c.y}, shown x{entry.zoom})</span></h3><div class="row">'
            f'<figure>{_img(src["hr"], view, "HR")}<figcaption><b>HR</b></figcaption></figure>'
            f'<figure>{_img(src["bicubic"], view, "bicubic")}<figcaption><b>bicubic</b> '
            f'{_db(c.bicubic_psnr)} dB</figcaption></figure>'
            f'<figure>{_img(src["model"], view, "model")}<figcaption><b>model</b> '
            f'{_db(c.psnr)} dB</figcaption></figure>'
            f'<figure><div class="compare" style="width:{view}px">{_img(src["model"], view, "")}'
            f'<div class="before">{_img(src["bicubic"], view, "")}</div></div><figcaption>'
            f'<b>bicubic | model</b>: drag the corner</figcaption></figure></div>')
    if not entry.crops:
        parts.append('<p class="meta">too small for crops after the border shave</p>')
    return (f'<section class="card image" id="img-{i}"><h2>{escape(row["name"])} '
            f'<span class="{_cls(gain)}">{_db(gain, True)} dB</span></h2>{overview}'
            f'<div class="crops">{"".join(parts)}</div></section>')


def render_page(title: str, facts: list[tuple[str, str]], result: dict[str, Any], collector,
                files: dict, curve_svg: str | None) -> str:
    """The whole page as a string (images referenced by the relative paths in ``files``)."""
    entries = {e.name: e for e in collector.entries}
    subtitle = (f'x{result["scale"]} · protocol {result["protocol"]} (border {result["border"]})'
                f' · {result["count"]} images'
                + (" · self-ensemble x8" if result.get("self_ensemble") else ""))
    sections = [_summary(facts, result)]
    if curve_svg:
        sections.append(f'<section class="card curve"><h2>Training curve</h2>{curve_svg}'
                        '</section>')
    sections.append(_table(result))
    sections += [_image_section(i, row, entries[row["name"]], files, result["scale"])
                 for i, row in enumerate(result["images"], start=1) if row["name"] in entries]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{escape(title)}</title><style>{_CSS}</style></head><body>'
            f'<header><div class="wrap"><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></div>'
            f'</header><main>{"".join(sections)}</main>'
            f'<footer>written by wdsr {escape(__version__)}</footer>'
            f'<script>{_SCRIPT}</script></body></html>\n')
