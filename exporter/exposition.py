"""Fast `/metrics` rendering: rows of `Family` metrics become text through cached series prefixes.

A `Family` is a prometheus_client `Metric` that keeps its series as rows of (label values, value or
`Histogram`) and builds the stock `samples` only when something reads them (stock encoders,
`get_sample_value`, `name[]` filtering). The `Renderer` reads the rows directly: the escaped
`name{labels} ` prefix of each series is cached, so a scrape formats only the values. Everything
else the registry yields goes through prometheus_client's own encoders. Output is byte-for-byte
what `generate_latest` (text 0.0.4 / 1.0.0) and the OpenMetrics `generate_latest` produce.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.validation import _is_valid_legacy_labelname, _is_valid_legacy_metric_name

from exporter.histogram import Histogram

Value = float | Histogram
Row = tuple[tuple[str, ...], Value]
# Name escapings under which a legacy (ASCII) name is written unchanged by the stock encoders.
_PLAIN_ESCAPINGS = frozenset({om.UNDERSCORES, om.ALLOWUTF8})
_EXACT_INT = 10**15  # below this, repr(float(n)) == f"{n}.0"
OFFLOAD = True  # format in a worker thread: see bench/bench_scrape.py, ingest while scraping
GZIP_LEVEL = 1  # 3x less CPU than level 6 for ~20% more bytes; scrapes are local traffic


def format_value(v: float) -> str:
    """`prometheus_client.utils.floatToGoString`, with a short cut for small ints."""
    if type(v) is int and -_EXACT_INT < v < 1_000_000:
        return f"{v}.0"
    d = float(v)
    s = repr(d)
    dot = s.find(".")
    if dot > 6 and d > 0:  # Go switches to exponents sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    if dot < 0:
        if s == "inf":
            return "+Inf"
        if s == "-inf":
            return "-Inf"
        if s == "nan":
            return "NaN"
    return s


def le_label(bound: float) -> str:
    """The `le` label value of a bucket bound, as the collectors have always written it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Family(Metric):
    """A metric family whose series are rows; stock `samples` are derived on demand."""

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: str,
        labels: Sequence[str] = (),
        value: float | None = None,
    ) -> None:
        if typ == "counter" and name.endswith("_total"):
            name = name[:-6]  # as CounterMetricFamily does
        if typ not in ("counter", "gauge", "histogram"):
            msg = f"Family supports counter, gauge and histogram, not {typ}"
            raise ValueError(msg)
        self._samples: list[Sample] | None = None
        super().__init__(name, documentation, typ)
        self.labels: tuple[str, ...] = tuple(labels)
        self.rows: list[Row] = []
        if value is not None:
            self.rows.append(((), value))

    def add_metric(self, labels: Sequence[str], value: Value) -> None:
        """One series: label values in the order of `labels`, a number or a Histogram."""
        self.rows.append((tuple(labels), value))

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = list(self._build_samples())
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value or None  # Metric.__init__ sets []: derive from rows instead

    def _build_samples(self) -> Iterable[Sample]:
        names, name = self.labels, self.name
        if self.type != "histogram":
            sample = f"{name}_total" if self.type == "counter" else name
            for values, v in self.rows:
                yield Sample(sample, dict(zip(names, values, strict=False)), v)
            return
        for values, h in self.rows:
            assert isinstance(h, Histogram)
            labels = dict(zip(names, values, strict=False))
            buckets = [(le_label(b), float(n)) for b, n in h.cumulative()]
            for le, n in buckets:
                yield Sample(f"{name}_bucket", {**labels, "le": le}, n)
            if float(buckets[0][0]) >= 0:  # HistogramMetricFamily drops these for negative bounds
                yield Sample(f"{name}_count", dict(labels), buckets[-1][1])
                yield Sample(f"{name}_sum", dict(labels), h.sum)


def counter(
    name: str, documentation: str, labels: Sequence[str] = (), value: float | None = None
) -> Family:
    """A counter `Family`, shaped like CounterMetricFamily(name, documentation, labels/value)."""
    return Family(name, documentation, "counter", labels, value)


def gauge(
    name: str, documentation: str, labels: Sequence[str] = (), value: float | None = None
) -> Family:
    """A gauge `Family`, shaped like GaugeMetricFamily(name, documentation, labels/value)."""
    return Family(name, documentation, "gauge", labels, value)


def histogram(name: str, documentation: str, labels: Sequence[str] = ()) -> Family:
    """A histogram `Family`; `add_metric(label_values, Histogram)` adds a series."""
    return Family(name, documentation, "histogram", labels)


def _prefix(sample: str, names: tuple[str, ...], values: tuple[str, ...], le: str = "") -> str:
    items = list(zip(names, values, strict=False))
    if le:
        items.append(("le", le))
    if not items:
        return f"{sample} "
    items.sort()
    labels = ",".join(f'{k}="{_escape_value(v)}"' for k, v in items)
    return f"{sample}{{{labels}}} "


class _Only:
    """A collector yielding given metrics, to hand one metric to a stock encoder."""

    def __init__(self, *metrics: Metric) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


class Renderer:
    """Renders a registry; keeps header and per-series prefix caches between scrapes."""

    def __init__(self) -> None:
        self._headers: dict[tuple[Any, ...], str | None] = {}
        self._series: dict[tuple[str, str, tuple[str, ...]], dict[tuple[str, ...], Any]] = {}

    def render(
        self, registry: Collector, *, openmetrics: bool, escaping: str = om.UNDERSCORES
    ) -> bytes:
        """The exposition of every metric `registry` yields, in text or OpenMetrics 1.0 form."""
        return self.format(list(registry.collect()), openmetrics=openmetrics, escaping=escaping)

    def format(
        self, metrics: Sequence[Metric], *, openmetrics: bool, escaping: str = om.UNDERSCORES
    ) -> bytes:
        """The exposition of collected metrics; reads only them (and the Histograms in rows)."""
        if escaping not in _PLAIN_ESCAPINGS:
            encode = om.generate_latest if openmetrics else generate_latest
            return encode(_Only(*metrics), escaping=escaping)
        out: list[str] = []
        rows = 0
        for metric in metrics:
            header = self._header(metric, openmetrics) if type(metric) is Family else None
            if header is None:
                out.append(self._stock(metric, openmetrics, escaping))
                continue
            out.append(header)
            assert isinstance(metric, Family)
            if metric.type == "histogram":
                self._histograms(metric, out)
            else:
                self._plain(metric, out)
            rows += len(metric.rows)
        if openmetrics:
            out.append("# EOF\n")
        if self.cached_series > 2 * rows + 1024:
            self._series.clear()  # label sets that went away (reload); rebuilt on demand
        return "".join(out).encode()

    @property
    def cached_series(self) -> int:
        """Series with a cached prefix; dropped when over twice the last scrape's rows."""
        return sum(len(c) for c in self._series.values())

    def _stock(self, metric: Metric, openmetrics: bool, escaping: str) -> str:
        if openmetrics:
            text = om.generate_latest(_Only(metric), escaping=escaping).decode()
            return text.removesuffix("# EOF\n")
        return generate_latest(_Only(metric), escaping=escaping).decode()

    def _header(self, fam: Family, openmetrics: bool) -> str | None:
        """HELP and TYPE lines; None when a name needs escaping (the stock encoder does that)."""
        key = (openmetrics, fam.name, fam.type, fam.documentation, fam.labels)
        if key in self._headers:
            return self._headers[key]
        header: str | None = None
        if _is_valid_legacy_metric_name(fam.name) and all(
            _is_valid_legacy_labelname(n) for n in (*fam.labels, "le")
        ):
            doc = fam.documentation.replace("\\", r"\\").replace("\n", r"\n")
            if openmetrics:
                doc = doc.replace('"', r"\"")
                header = f"# HELP {fam.name} {doc}\n# TYPE {fam.name} {fam.type}\n"
            else:
                name = f"{fam.name}_total" if fam.type == "counter" else fam.name
                header = f"# HELP {name} {doc}\n# TYPE {name} {fam.type}\n"
        self._headers[key] = header
        return header

    def _cache(self, fam: Family) -> dict[tuple[str, ...], Any]:
        key = (fam.name, fam.type, fam.labels)
        cache = self._series.get(key)
        if cache is None:
            cache = self._series[key] = {}
        return cache

    def _plain(self, fam: Family, out: list[str]) -> None:
        cache = self._cache(fam)
        get, names, fmt, append = cache.get, fam.labels, format_value, out.append
        sample = f"{fam.name}_total" if fam.type == "counter" else fam.name
        for values, v in fam.rows:
            prefix = get(values)
            if prefix is None:
                prefix = cache[values] = _prefix(sample, names, values)
            if type(v) is int and 0 <= v < 1_000_000:  # most counters: skip the call
                append(f"{prefix}{v}.0\n")
            else:
                append(f"{prefix}{fmt(v)}\n")

    def _histograms(self, fam: Family, out: list[str]) -> None:
        """Per series, one %-format of a cached template: buckets, then count and sum."""
        cache = self._cache(fam)
        fmt, append = format_value, out.append
        for values, h in fam.rows:
            assert isinstance(h, Histogram)
            # An unchanged Histogram reuses its text: `observe` always moves `count`, so
            # (Histogram, count, sum) identifies the counts. The key is read before the buckets,
            # so an observation made meanwhile (offloaded scrape) only forces a later re-render.
            key = (h, h.count, h.sum)  # holding h, not id(h): no id reuse
            entry = cache.get(values)
            if entry is None or entry[0] != h.bounds:
                entry = cache[values] = [*_histogram_templates(fam, values, h.bounds), None]
            else:
                done = entry[4]
                if done is not None and done[0] == key:
                    append(done[1])
                    continue
            _, small, general, with_tail, _ = entry
            counts = h.cumulative_counts()
            last = counts[-1]
            tail = (last, fmt(h.sum)) if with_tail else ()
            if type(last) is int and last < 1_000_000:  # counts only grow: all are small ints
                text = small % (*counts, *tail)
            else:
                text = general % (*map(fmt, counts), *map(fmt, tail[:1]), *tail[1:])
            entry[4] = (key, text)  # one store: concurrent scrapes never pair a key with other text
            append(text)


def _histogram_templates(
    fam: Family, values: tuple[str, ...], bounds: tuple[float, ...]
) -> tuple[tuple[float, ...], str, str, bool]:
    """(bounds, %-template for int counts below 1e6, one for formatted values, has count/sum)."""
    names, name = fam.labels, fam.name
    les = [le_label(b) for b in (*bounds, float("inf"))]
    prefixes = [_prefix(f"{name}_bucket", names, values, le) for le in les]
    with_tail = float(les[0]) >= 0  # HistogramMetricFamily drops count and sum otherwise
    if with_tail:
        prefixes += [_prefix(f"{name}_count", names, values), _prefix(f"{name}_sum", names, values)]
    escaped = [p.replace("%", "%%") for p in prefixes]
    general = "".join(f"{p}%s\n" for p in escaped)
    ints = escaped[:-1] if with_tail else escaped
    small = "".join(f"{p}%d.0\n" for p in ints) + (f"{escaped[-1]}%s\n" if with_tail else "")
    return bounds, small, general, with_tail


def _plan(encoder: Callable[..., bytes]) -> tuple[bool, str] | None:
    """(openmetrics, escaping) of a stock encoder `choose_encoder` picked; None if not ours."""
    func, kwargs = encoder, {}
    if isinstance(encoder, partial):
        func, kwargs = encoder.func, encoder.keywords
    if func is generate_latest:
        return False, kwargs.get("escaping", om.UNDERSCORES)
    if func is om.generate_latest:
        return True, kwargs.get("escaping", om.UNDERSCORES)
    return None


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def metrics_handler(registry: CollectorRegistry, *, offload: bool = OFFLOAD) -> Handler:
    """`GET /metrics` like prometheus_client's aiohttp handler, rendered by a `Renderer`.

    Content negotiation is prometheus_client's (`choose_encoder`), `name[]` filtering too.
    Collectors run on the event loop, so they read state the loop alone mutates; with `offload`
    the text is then formatted in a worker thread, which the loop preempts to serve ingest.
    """
    renderer = Renderer()

    async def handler(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        names = request.query.getall("name[]", [])
        source = registry.restricted_registry(names) if names else registry
        metrics = list(source.collect())
        plan = None if names else _plan(encoder)
        if plan is None:
            job = partial(encoder, _Only(*metrics))
        else:
            job = partial(renderer.format, metrics, openmetrics=plan[0], escaping=plan[1])
        body = await asyncio.to_thread(job) if offload else job()
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        if gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
            response.body = await asyncio.to_thread(_gzip, body)  # zlib releases the GIL
            response.headers[hdrs.CONTENT_ENCODING] = "gzip"
        else:
            response.enable_compression()  # e.g. deflate, as the stock handler offers
        return response

    return handler
