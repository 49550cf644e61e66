"""An exposition format (the classic text, OpenMetrics) as prometheus-client writes it, made
cheap by keeping the text of each line but its value.

prometheus-client validates and escapes every name and label of every line it writes, which
costs several microseconds a line: most of a scrape. Yet a series' line differs from one scrape
to the next by its value alone. So each family's header, and the text before the value of each
series, is taken from the library's own output once (per format), and a scrape writes only
the values. Taking the text from the library, rather than writing an escaper of our own, keeps
the page byte for byte the library's, in every format and escaping it offers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator
from functools import partial
from typing import Protocol, runtime_checkable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

Encoder = Callable[[Collector], bytes]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def format_key(encoder: Encoder) -> Hashable:
    """The same for two encoders that write alike: choose_encoder makes a new partial of the
    library's encoder, with the format's version and escaping, for every request."""
    if isinstance(encoder, partial):
        return (encoder.func, tuple(sorted(encoder.keywords.items())))
    return encoder


def value_text(value: float) -> str:
    """floatToGoString(value) in a fraction of its time for the values a page mostly has.

    It writes a whole number below a million as "123.0", any other finite float below a
    million as repr() does, and only larger values differently (with exponents, as Go does)."""
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    if type(value) is float and -math.inf < value < 1_000_000:
        return repr(value)
    return floatToGoString(value)  # type: ignore[no-any-return, no-untyped-call]


@runtime_checkable
class Rendered(Protocol):
    """A collector that writes its own families' text, as the format's encoder would write
    what its collect() gives (the registry then skips the library's family objects)."""

    def render(self, page_format: Format) -> str: ...


def _empty(family: Metric) -> Metric:
    return Metric(family.name, family.documentation, family.type, family.unit)


class Format:
    """One format: what its encoder writes after the last family (OpenMetrics' "# EOF"), and
    the kept text of the families and series written in it."""

    def __init__(self, encoder: Encoder) -> None:
        self.key = format_key(encoder)
        self._encoder = encoder
        self._trailer = encoder(_Families(()))
        self._headers: dict[Hashable, str] = {}
        # The text before the value, by (family, sample name, labels); None for a sample the
        # format does not write as one line of its family (see family()).
        self._prefixes: dict[Hashable, str | None] = {}
        self._used: dict[Hashable, str | None] = {}

    @property
    def trailer(self) -> bytes:
        return self._trailer

    def body(self, collector: Collector) -> bytes:
        """A collector's families as the library writes them, without the trailer."""
        text = self._encoder(collector)
        return text[: len(text) - len(self._trailer)]

    def lines(self, family: Metric) -> list[str]:
        return self.body(_Families((family,))).decode().splitlines(keepends=True)

    def prefixes(self, empty: Metric, one_series: Metric) -> tuple[str, list[str]]:
        """The header of a family (its lines without samples), and the text before each value
        of one series, in the order the format writes its samples."""
        header = self.lines(empty)
        samples = self.lines(one_series)[len(header) :]
        return "".join(header), [line[: line.rindex(" ") + 1] for line in samples]

    def family(self, family: Metric) -> str:
        """What the library writes for family, from the kept text."""
        key = (family.name, family.type, family.documentation, family.unit)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = "".join(self.lines(_empty(family)))
        lines = [header]
        for sample in family.samples:
            if sample.timestamp is not None or sample.exemplar or sample.native_histogram:
                return self.body(_Families((family,))).decode()
            series = (family.name, sample.name, tuple(sample.labels.items()))
            if series in self._prefixes:
                prefix = self._prefixes[series]
            else:
                prefix = self._prefix(family, sample)
            self._used[series] = prefix
            if prefix is None:
                return self.body(_Families((family,))).decode()
            lines.append(f"{prefix}{value_text(sample.value)}\n")
        return "".join(lines)

    def page_done(self) -> None:
        """Forgets the series the page no longer has (a disk pulled, a chip gone)."""
        self._prefixes, self._used = self._used, {}

    def _prefix(self, family: Metric, sample: Sample) -> str | None:
        one = _empty(family)
        one.samples.append(sample)
        header, lines = len(self.lines(_empty(family))), self.lines(one)
        # One line more than the header, or the format writes this sample elsewhere (the
        # classic text moves _created, _gsum and _gcount samples to a family of their own).
        if len(lines) != header + 1:
            return None
        return lines[-1][: lines[-1].rindex(" ") + 1]
