"""GET /abc and the routing around it, on the real process (docs/contract.md, The endpoint)."""

from __future__ import annotations

import httpx
from support.service import ServiceProcess, StartService
from support.waiting import wait_for

TEXT = "text/plain; charset=utf-8"


def test_abc_without_num_computes_fib_10_and_says_so(service: ServiceProcess) -> None:
    response = service.get("/abc")
    assert response.status_code == 200
    assert response.content == b"there is no env NUM. Computation succeeded\n"
    assert response.headers["content-type"] == TEXT


def test_abc_with_num_from_the_environment(start_service: StartService) -> None:
    response = start_service(env={"NUM": "20"}).get("/abc")
    assert response.status_code == 200
    assert response.content == b"there is env NUM. Computation succeeded\n"
    assert response.headers["content-type"] == TEXT


def test_abc_with_num_from_the_flag_which_wins(start_service: StartService) -> None:
    service = start_service("--num", "12", env={"NUM": "not-a-number"})
    assert service.get("/abc").content == b"there is env NUM. Computation succeeded\n"


def test_empty_num_means_unset_as_in_the_lab(start_service: StartService) -> None:
    service = start_service(env={"NUM": ""})
    assert service.get("/abc").content == b"there is no env NUM. Computation succeeded\n"


def test_unknown_path_is_404_with_a_short_text(service: ServiceProcess) -> None:
    response = service.get("/nowhere")
    assert response.status_code == 404
    assert response.text == "not found\n"
    assert response.headers["content-type"] == TEXT


def test_wrong_method_is_405_with_allow(service: ServiceProcess) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = httpx.request(method, f"{service.url}/abc")
        assert response.status_code == 405, method
        assert response.text == "method not allowed\n"
        assert response.headers["allow"] == "GET, HEAD"


def test_head_is_get_without_the_body(service: ServiceProcess) -> None:
    get = service.get("/abc")
    head = httpx.head(f"{service.url}/abc")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "43"
    assert head.headers["content-type"] == TEXT


def test_probes(service: ServiceProcess) -> None:
    assert (service.get("/healthz").status_code, service.get("/healthz").text) == (200, "ok\n")
    assert (service.get("/readyz").status_code, service.get("/readyz").text) == (200, "ready\n")


def test_localhost_and_ipv6_loopback_are_served(start_service: StartService) -> None:
    # The fixture adds --host 127.0.0.1 first; a later --host wins.
    assert start_service("--host", "localhost").get("/healthz").status_code == 200
    ipv6 = start_service("--host", "::1", ready=False)
    url = f"http://[::1]:{ipv6.port}/healthz"
    assert wait_for(lambda: httpx.get(url, timeout=1).status_code == 200, 10, "::1 serving")
