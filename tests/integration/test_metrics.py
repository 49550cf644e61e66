"""/metrics on the real process: the lab's families exactly (docs/contract.md, Metrics), the
runtime, the formats."""

from __future__ import annotations

import gzip
import subprocess

import httpx
from support.metric_names import PROCESS_SERIES
from support.service import ServiceProcess, StartService
from support.waiting import wait_for

LAB_BUCKETS = [
    "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0", "2.0", "5.0", "10.0", "20.0", "30.0",
    "60.0", "120.0", "300.0", "+Inf",
]  # fmt: skip


def lines(service: ServiceProcess, **headers: str) -> list[str]:
    return service.get("/metrics", headers=headers).text.splitlines()


def test_lab_request_families_exactly_as_the_lab(service: ServiceProcess) -> None:
    text = lines(service)
    assert "# HELP request_total Number of request processed by this service." in text
    assert "# TYPE request_total counter" in text
    assert "# HELP request_latency_seconds Time spent in this service." in text
    assert "# TYPE request_latency_seconds histogram" in text
    buckets = [
        line.split('le="')[1].split('"')[0]
        for line in text
        if line.startswith("request_latency_seconds_bucket{")
    ]
    assert buckets == LAB_BUCKETS
    # The lab's families carry no labels at all.
    assert "request_total 0.0" in text


def test_each_abc_counts_once_and_is_observed_once(service: ServiceProcess) -> None:
    for _ in range(7):
        assert service.get("/abc").status_code == 200
    service.get("/nowhere")
    service.get("/healthz")
    assert service.metric("request_total") == 7
    assert service.metric("request_latency_seconds_count") == 7
    assert service.metric('request_latency_seconds_bucket{le="+Inf"}') == 7


def test_no_created_series_in_the_classic_format(service: ServiceProcess) -> None:
    service.get("/abc")
    assert not [line for line in lines(service) if "_created" in line]


def test_process_and_python_runtime_collectors(service: ServiceProcess) -> None:
    names = {line.split("{")[0].split(" ")[0] for line in lines(service) if line[0] != "#"}
    for name in (
        *PROCESS_SERIES,
        "python_info",
        "python_gc_objects_collected_total",
        "python_gc_collections_total",
    ):
        assert name in names, name


def test_openmetrics_when_the_scraper_asks(service: ServiceProcess) -> None:
    response = service.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE request counter" in response.text
    classic = service.get("/metrics")
    assert classic.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_gzip_when_asked_and_only_then(service: ServiceProcess) -> None:
    raw = httpx.get(f"{service.url}/metrics", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert "# TYPE request_total counter" in raw.text  # httpx decoded the gzip body
    with httpx.stream("GET", f"{service.url}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert gzip.decompress(body).startswith(b"# HELP")
    plain = httpx.get(f"{service.url}/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    refused = httpx.get(f"{service.url}/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_route_metrics_by_method_route_and_status(service: ServiceProcess) -> None:
    service.get("/abc")
    service.get("/healthz")
    httpx.post(f"{service.url}/abc")
    httpx.request("BREW", f"{service.url}/abc")
    service.get("/nowhere")
    text = lines(service)
    for sample in (
        'http_requests_total{method="GET",route="/abc",status="200"} 1.0',
        'http_requests_total{method="GET",route="/healthz",status="200"} 1.0',
        'http_requests_total{method="POST",route="/abc",status="405"} 1.0',
        'http_requests_total{method="OTHER",route="/abc",status="405"} 1.0',
        'http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0',
        'http_request_duration_seconds_count{method="GET",route="/abc"} 1.0',
    ):
        assert sample in text, sample


def test_unknown_paths_cannot_create_series(service: ServiceProcess) -> None:
    for i in range(50):
        service.get(f"/random/{i}")
    unmatched = [line for line in lines(service) if "<unmatched>" in line]
    assert 'http_requests_total{method="GET",route="<unmatched>",status="404"} 50.0' in unmatched
    assert not [line for line in lines(service) if "/random/" in line]


def test_promtool_check_metrics_reports_nothing(service: ServiceProcess) -> None:
    service.get("/abc")
    service.get("/nowhere")
    body = service.get("/metrics").content
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert result.stderr == b""


REQUEST_FAMILIES = {
    "request_total",
    "request_latency_seconds",
    "http_requests_total",
    "http_request_duration_seconds",
}


def families(service: ServiceProcess) -> set[str]:
    return {line.split()[2] for line in lines(service) if line.startswith("# TYPE ")}


def test_request_metrics_off_leaves_out_every_request_family(
    service: ServiceProcess, start_service: StartService
) -> None:
    assert families(service) >= REQUEST_FAMILIES
    quiet = start_service("--access-log", "off", "--request-metrics", "off")
    assert quiet.get("/abc").status_code == 200
    shown = families(quiet)
    assert "process_cpu_seconds_total" in shown
    assert not shown & REQUEST_FAMILIES
    warning = "request metrics are off: /metrics has no request_total, "
    wait_for(
        lambda: (
            [e["level"] for e in quiet.logs() if e["message"].startswith(warning)] == ["warning"]
        ),
        5,
        "one warning that the request metrics are off",
    )
