"""The text of an access line, in the parts both builders of it share (access_log.py, in
Python, and _access_log.pyx, compiled).

A line is: start (up to the timestamp's milliseconds) + three digits + middle (up to the
duration's value) + the duration + the client + the end. Start changes once a second,
middle once per method, route and status: both are built once and reused. The line is the
same, to the character, as the JSON formatter writes for a record with these fields (logs.py).
"""

from __future__ import annotations

from json.encoder import encode_basestring  # json.dumps(s, ensure_ascii=False) for a str

from example_service.logs import seconds_text

# The methods clients send. Lines with any other get a middle of their own that is never
# kept: a client could otherwise grow the cache with every method it makes up.
KEPT_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
CLIENT = b', "client": '
END = b"}\n"


def start(second: int) -> bytes:
    return f'{{"time": "{seconds_text(second)}.'.encode()


def middle(method: str, route: str, status: int) -> bytes:
    return (
        'Z", "level": "info", "logger": "example_service.access", "message": "request", '
        f'"method": {encode_basestring(method)}, "route": {encode_basestring(route)}, '
        f'"status": {status}, "duration_ms": '
    ).encode("utf-8", "backslashreplace")


def quoted(text: str) -> bytes:
    return encode_basestring(text).encode("utf-8", "backslashreplace")
