"""Bar charts drawn on the server: the geometry is computed here, the SVG written by the
autoescaped macro ``bar_chart_svg`` of templates/macros.html, so labels typed by users stay text.
No JavaScript, no CDN (users may be offline)."""

WIDTH = 520
BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 150
VALUE_WIDTH = 40


def bar_chart(ident, title, data):
    """A horizontal bar chart of {label: count}, one bar per label in the given order; ``ident``
    becomes the figure's element id (e.g. "complaints-chart-category")."""
    items = list(data.items())
    top = max((v for _label, v in items), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = []
    for i, (label, value) in enumerate(items):
        y = i * (BAR_HEIGHT + GAP)
        bars.append({"label": str(label)[:20], "value": value, "x": LABEL_WIDTH, "y": y,
                     "width": round(span * value / top, 1), "height": BAR_HEIGHT,
                     "text_y": y + BAR_HEIGHT * 0.7, "value_x": LABEL_WIDTH + round(span * value / top, 1) + 4})
    return {"id": ident, "title": title, "width": WIDTH,
            "height": max(len(bars), 1) * (BAR_HEIGHT + GAP), "bars": bars}
