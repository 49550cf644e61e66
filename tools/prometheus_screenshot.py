"""Render a query on Prometheus' graph page in headless Chromium and save it as a PNG.

The lab's last step is "view it in Prometheus": this shows that step for real. The page is
rendered twice, once to read the DOM (did the query return series?) and once to a PNG.
Debian's Prometheus 2.42 serves the classic UI, at /classic/graph.

    python tools/prometheus_screenshot.py --prometheus http://127.0.0.1:9090 \\
        --expr 'sum by (instance) (rate(request_total[1m]))' --out docs/images/prometheus-graph.png
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

# Without the networking switches Chromium tries to reach Google's hosts at every start,
# which this machine's closed network refuses.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,800", "--virtual-time-budget=5000",
)  # fmt: skip
LEGEND_LABEL = re.compile(r'<span class="label">([^<]*)</span>')
VISIBLE_ERROR = re.compile(r'class="error alert alert-danger"(?! style="display: none;")[^>]*>')
TIMEOUT = 60


def graph_url(prometheus: str, expr: str, time_range: str) -> str:
    query = urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": time_range})
    return f"{prometheus.rstrip('/')}/classic/graph?{query}"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        raise SystemExit("chromium is missing; install it with: sudo apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


def series_shown(dom: str) -> list[str]:
    """The legend entries the graph drew: one per series the query returned."""
    return [html.unescape(label) for label in LEGEND_LABEL.findall(dom)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--expr", default="sum by (instance) (rate(request_total[1m]))")
    parser.add_argument("--range", default="15m", help="the graph's time range")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    url = graph_url(args.prometheus, args.expr, args.range)
    dom = chromium("--dump-dom", url).stdout
    if "prometheus_input_group" not in dom:
        print(f"the graph page did not load from {url}", file=sys.stderr)
        return 1
    if VISIBLE_ERROR.search(dom):
        print(f"Prometheus reported an error for {args.expr!r}", file=sys.stderr)
        return 1
    series = series_shown(dom)
    if not series:
        print(f"the query {args.expr!r} returned no data", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shot = chromium(f"--screenshot={args.out.resolve()}", url)
    if shot.returncode != 0 or not args.out.exists():
        print(f"chromium could not take the screenshot: {shot.stderr[-500:]}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(series)} series: {', '.join(series)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
