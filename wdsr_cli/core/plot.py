"""The training curve: loss and validation PSNR over steps, as a small self-contained SVG
(``runs/<name>/plot.svg``, and on top of the run's report)."""

from __future__ import annotations


def training_curve_svg(points_loss: list[tuple[int, float]], points_psnr: list[tuple[int, float]],
              bicubic: float | None, loss_name: str = "l1") -> str:
    """A small self-contained SVG: loss (left axis) and validation PSNR (right axis)."""
    w, h, pad = 640, 320, 48

    def path(points, lo, hi, color, steps_max):
        if not points:
            return ""
        span = (hi - lo) or 1.0
        coords = [(pad + (w - 2 * pad) * s / max(steps_max, 1),
                   h - pad - (h - 2 * pad) * (v - lo) / span) for s, v in points]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
        return f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>'

    steps_max = max([s for s, _ in points_loss + points_psnr] or [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">step (max {steps_max})</text>']
    if points_loss:
        vals = [v for _, v in points_loss]
        lo, hi = min(vals), max(vals)
        parts.append(path(points_loss, lo, hi, "#1f77b4", steps_max))
        parts.append(f'<text x="{pad}" y="20" fill="#1f77b4">'
                     f'{loss_name.upper()} loss {hi:.2f} .. {lo:.2f}</text>')
    if points_psnr:
        vals = [v for _, v in points_psnr] + ([bicubic] if bicubic else [])
        lo, hi = min(vals), max(vals)
        parts.append(path(points_psnr, lo, hi, "#d62728", steps_max))
        if bicubic:
            parts.append(path([(0, bicubic), (steps_max, bicubic)], lo, hi, "#999", steps_max))
        parts.append(f'<text x="{w - pad}" y="20" fill="#d62728" text-anchor="end">val PSNR '
                     f'{points_psnr[-1][1]:.2f} dB (best {max(vals[:len(points_psnr)]):.2f})'
                     + (f', bicubic {bicubic:.2f}' if bicubic else "") + '</text>')
    parts.append("</svg>")
    return "\n".join(parts)
