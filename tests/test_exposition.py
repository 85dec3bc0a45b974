"""The fast /metrics renderer writes exactly what prometheus_client's encoders write."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Info, Summary, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics import exposition as om
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from exporter import keys
from exporter.app import create_app
from exporter.config import build_config
from exporter.defaults import PROVIDER_DEFAULTS
from exporter.exposition import Family, Renderer, counter, format_value, gauge, histogram
from exporter.histogram import Histogram
from exporter.host import HostSample
from exporter.providers.base import ProbeResult, RateLimit, Usage
from exporter.traffic_setup import INGESTOR
from exporter.vocab import PHASES, Reason

Client = TestClient[web.Request, web.Application]
EXTRA_MODELS = 6  # per provider, on top of the default allow-list: ~4 000 series in all
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def app_config() -> Any:
    """Default providers with longer allow-lists, on a closed loopback port (never probed)."""
    providers = {
        pid: {
            "models": [*d["models"], *(f"{pid}-extra-{i}" for i in range(EXTRA_MODELS))],
            "base_url": f"http://127.0.0.1:9/{pid}",
        }
        for pid, d in PROVIDER_DEFAULTS.items()
    }
    return build_config({"providers": providers, "ingest": {"token_env": None}}, env={})


def populate(app: web.Application) -> None:
    """Probe results of every kind, one call per (provider, model, outcome), sessions."""
    store = app[keys.PROBES]
    phases = {p: 0.01 * n for n, p in enumerate(PHASES)}
    limits = {"requests": RateLimit(1000, 0, 0.5), "tokens": RateLimit(None, 9e5)}
    for i, (pid, ps) in enumerate(sorted(store.providers.items())):
        for check in ps.checks:
            ok = ProbeResult(
                success=True,
                duration=0.05 * (i + 1),
                phases=phases,
                usage=Usage(input=5, output=1 + i, reasoning=i % 2),
                models=frozenset(ps.allowed_models[::2]),
                ratelimits=limits,
            )
            store.record(pid, check, ok, cost_usd=1e-9 * (i + 1), now=1_732_260_000.123 + i)
            failed = ProbeResult(success=False, reason=list(Reason)[i])
            store.record(pid, check, failed, now=1_732_260_030.5 + i)
    events: list[dict[str, Any]] = []
    for pid, ps in store.providers.items():
        for j, model in enumerate([*ps.allowed_models, "not-on-the-list"]):
            base = {"type": "llm_call", "provider": pid, "model": model}
            events += [{**base, "outcome": str(r)} for r in Reason]
            timed = {
                "duration_seconds": 0.3 * j,
                "time_to_first_token_seconds": 0.1,
                "input_tokens": 10 ** min(j, 9),
                "output_tokens": 7,
                "cached_input_tokens": j,
                "quality_score": j / 40,
                "cost_usd": None if j % 3 else 1e-9 * j,
                "session_id": f"s-{pid}",
            }
            events.append({**base, **timed})
        sid = f"s-{pid}"
        events += [
            {"type": "session_start", "session_id": sid},
            {"type": "session_message", "session_id": sid, "role": "assistant", "provider": pid},
            {"type": "session_end", "session_id": sid},
        ]
    result = app[INGESTOR].ingest(json.dumps(events).encode())
    assert not result["rejected"]


async def never_answers(*_: object) -> ProbeResult:
    """A prober that keeps the populated probe state as it is while a test runs."""
    await asyncio.Event().wait()
    raise AssertionError


def build_app(registry: CollectorRegistry | None = None) -> web.Application:
    """The real app (auto_describe registry, as create_app's default), populated, not started."""
    env = {d["api_key_env"]: f"sk-test-{pid}" for pid, d in PROVIDER_DEFAULTS.items()}
    probers = dict.fromkeys(("openai", "anthropic", "gemini"), never_answers)
    app = create_app(
        app_config(),
        env=env,
        registry=registry or CollectorRegistry(auto_describe=True),
        probers=probers,
    )
    populate(app)
    host = app[keys.HOST]  # fixed readings: bodies taken moments apart must be comparable
    host.latest = HostSample(cpu=0.25, memory=0.5, disk=0.75)
    host.sample = lambda: host.latest  # type: ignore[method-assign]
    return app


@pytest.fixture(scope="module")
def full_registry() -> CollectorRegistry:
    """Every collector of the real app, populated; plus stock metrics of other kinds."""
    reg = CollectorRegistry()
    build_app(reg)
    Counter("demo_requests", "A stock counter: its _created goes last.", ["path"],
            registry=reg).labels("/a").inc(3)  # fmt: skip
    Summary("demo_latency_seconds", "A stock summary.", registry=reg).observe(0.25)
    Info("demo_build", "A stock info metric.", registry=reg).info({"version": "1"})
    return reg


def masked(body: bytes) -> str:
    """The exposition with the live process_* values (CPU, memory, fds) blanked out."""
    return re.sub(r"(?m)^(process_\S+) .*$", r"\1 X", body.decode())


def test_registry_is_realistic(full_registry: CollectorRegistry) -> None:
    """The fixture covers probe, provider, traffic, session, exporter and process families."""
    text = generate_latest(full_registry).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    for name in ("llm_probe_phase_seconds", "llm_provider_ratelimit_remaining", "llm_requests",
                 "llm_request_duration_seconds", "llm_session_messages", "llm_exporter_events",
                 "llm_alert_threshold", "process_cpu_seconds", "demo_requests"):  # fmt: skip
        assert name in names
    assert sum(1 for line in text.splitlines() if not line.startswith("#")) > 4000


def test_text_is_byte_for_byte_stock(full_registry: CollectorRegistry) -> None:
    """Same bytes as generate_latest, run after run (the caches do not change the output)."""
    renderer = Renderer()
    for _ in range(2):
        assert masked(renderer.render(full_registry, openmetrics=False)) == masked(
            generate_latest(full_registry)
        )


def test_text_parses_to_the_same_families(full_registry: CollectorRegistry) -> None:
    """The parser sees identical families: names, types, help and samples with values."""
    ours = Renderer().render(full_registry, openmetrics=False).decode()
    stock = generate_latest(full_registry).decode()

    def families(text: str) -> list[tuple[Any, ...]]:
        return [
            (f.name, f.type, f.documentation,
             [(s.name, s.labels, "X" if s.name.startswith("process_") else s.value)
              for s in f.samples])
            for f in text_string_to_metric_families(text)
        ]  # fmt: skip

    assert families(ours) == families(stock)


def test_openmetrics_is_byte_for_byte_stock(full_registry: CollectorRegistry) -> None:
    """OpenMetrics 1.0 as the stock encoder writes it, and it parses (so `# EOF` is there)."""
    ours = Renderer().render(full_registry, openmetrics=True)
    assert masked(ours) == masked(om.generate_latest(full_registry))
    assert ours.endswith(b"\n# EOF\n")
    assert any(f.name == "llm_requests" for f in om_families(ours.decode()))


def test_promtool_finds_nothing_to_say(full_registry: CollectorRegistry) -> None:
    """`promtool check metrics` prints no lint problem for the fast output."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "Debian's promtool is expected in /usr/bin"
    body = Renderer().render(full_registry, openmetrics=False)
    done = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                          timeout=60, check=False)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


EDGE_VALUES: list[float] = [
    0, 1, -1, 0.0, -0.0, 1e-9, 0.1, 2.5, 999_999, 1_000_000, 1234567.0, 1.5e300, -1234567.0,
    10**15, -(10**15), 10**20, 2**53 + 1, math.inf, -math.inf, math.nan, True, 1_732_260_000.123,
]  # fmt: skip
NASTY = ["back\\slash", 'quo"te', "new\nline", 'all \\ " \n three', "ünïcødé", "{brace}", ""]


def edge_families() -> tuple[list[Any], list[Any]]:
    """The same metrics as Family and as prometheus_client's own metric families."""
    doc = 'Help with \\ backslash, "quotes" and a\nnewline.'
    fams: list[Any] = [counter("edge_c", doc, ["k", "v"]), gauge("edge_g", doc, ["k", "v"])]
    stock: list[Any] = [CounterMetricFamily("edge_c", doc, labels=["k", "v"]),
                        GaugeMetricFamily("edge_g", doc, labels=["k", "v"])]  # fmt: skip
    for i, value in enumerate(EDGE_VALUES):
        for ours, theirs in zip(fams, stock, strict=True):
            ours.add_metric([str(i), NASTY[i % len(NASTY)]], value)
            theirs.add_metric([str(i), NASTY[i % len(NASTY)]], value)
    fams += [gauge("edge_plain", doc, value=3), counter("edge_total", doc, value=2.5)]
    stock += [GaugeMetricFamily("edge_plain", doc, value=3),
              CounterMetricFamily("edge_total", doc, value=2.5)]  # fmt: skip
    h_ours = histogram("edge_h", doc, ["k"])
    h_stock = HistogramMetricFamily("edge_h", doc, labels=["k"])
    for key, bounds, values in (
        ("small", (0.1, 1, 600), [0.05, 0.5, 1, 700, 0.1]),
        ("empty", (1, 2), []),
        ("big", (1,), [0.5] * 1_000_001),  # counts past 1e6 are written in Go's exponent form
        ("negative", (-1.0, 0.0, 1.0), [-2, 0.5]),  # HistogramMetricFamily drops count and sum
        ('"q"\n 100%d {}', (86400, 1e6), [5]),  # % and braces: templates escape them
    ):
        h = Histogram(bounds)
        for v in values:
            h.observe(v)
        h_ours.add_metric([key], h)
        buckets = [("+Inf" if math.isinf(b) else repr(float(b)), float(n))
                   for b, n in h.cumulative()]  # fmt: skip
        h_stock.add_metric([key], buckets, h.sum)
    return [*fams, h_ours], [*stock, h_stock]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_edge_values_and_escaping_match_stock(openmetrics: bool) -> None:
    """NaN, ±Inf, 1e-9, -0.0, huge ints, Go exponents, nasty label values and help text."""
    ours, theirs = edge_families()
    encode = om.generate_latest if openmetrics else generate_latest

    class Stock:
        def collect(self) -> list[Any]:
            return theirs

    expected = encode(Stock())
    assert Renderer().format(ours, openmetrics=openmetrics) == expected
    assert encode(_Fixed(ours)) == expected  # Family's derived `samples` are the stock ones
    assert [m.samples for m in ours] == [m.samples for m in theirs]


class _Fixed:
    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Any]:
        return self.metrics


@given(st.one_of(st.floats(), st.integers(min_value=-(10**300), max_value=10**300)))
def test_format_value_is_float_to_go_string(value: float) -> None:
    """Every float and int is written as prometheus_client writes it."""
    assert format_value(value) == floatToGoString(value)


def test_histogram_text_follows_new_observations() -> None:
    """A series' cached text is reused only while its Histogram is unchanged."""
    h = Histogram((1, 5))
    renderer = Renderer()

    def scrape() -> tuple[bytes, bytes]:
        fam = histogram("lat_seconds", "Latency.", ["p"])  # collectors build families per scrape
        fam.add_metric(["a"], h)
        return renderer.format([fam], openmetrics=False), generate_latest(_Fixed([fam]))

    for v in (None, 0.5, 0.0, 7):  # an observation of 0 still changes the count
        if v is not None:
            h.observe(v)
        ours, stock = scrape()
        assert ours == stock
    assert b'lat_seconds_bucket{le="+Inf",p="a"} 3.0' in ours


def test_series_cache_is_dropped_when_label_sets_go_away() -> None:
    """Label sets that disappear (a reload) do not stay cached forever."""
    renderer = Renderer()
    big = gauge("g", "G.", ["i"])
    big.rows = [((str(i),), i) for i in range(5000)]
    renderer.format([big], openmetrics=False)
    assert renderer.cached_series == 5000
    small = gauge("g", "G.", ["i"])
    small.add_metric(["1"], 1)
    assert (
        renderer.format([small], openmetrics=False)
        == b'# HELP g G.\n# TYPE g gauge\ng{i="1"} 1.0\n'
    )
    assert renderer.cached_series == 0


def test_family_behaves_like_a_stock_metric_family() -> None:
    """Counters drop a `_total` suffix, other types are refused, get_sample_value works."""
    reg = CollectorRegistry()
    fam = counter("x_total", "X.", ["a"])
    fam.add_metric(["b"], 2)
    reg.register(_Fixed([fam]))
    assert fam.name == "x"
    assert reg.get_sample_value("x_total", {"a": "b"}) == 2
    with pytest.raises(ValueError, match="summary"):
        Family("s", "S.", "summary")


# HTTP: the handler create_app mounts on /metrics


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(build_app(), auto_decompress=False)


async def scrape(client: Client, **headers: str) -> tuple[Any, bytes]:
    """GET /metrics; identity encoding unless the test asks for another (the client sends gzip)."""
    resp = await client.get("/metrics", headers={"Accept-Encoding": "identity", **headers})
    assert resp.status == 200
    return resp, await resp.read()


def stock_of(app: web.Application) -> bytes:
    return generate_latest(app[keys.REGISTRY])


async def test_http_text_is_stock(client: Client) -> None:
    """No Accept header: text 0.0.4, the stock bytes, not compressed."""
    resp, body = await scrape(client)
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in resp.headers
    assert masked(body) == masked(stock_of(client.app))


OM_1 = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/openmetrics-text; version=1.0.0", f"{OM_1}; escaping=underscores"),
        (PROMETHEUS_ACCEPT, f"{OM_1}; escaping=underscores"),
        ("application/openmetrics-text", OM_1),
    ],
)
async def test_http_openmetrics_is_negotiated(
    client: Client, accept: str, content_type: str
) -> None:
    """OpenMetrics when asked (Prometheus asks for it first), as prometheus_client negotiates."""
    resp, body = await scrape(client, Accept=accept)
    assert resp.headers["Content-Type"] == content_type
    assert masked(body) == masked(om.generate_latest(client.app[keys.REGISTRY]))


async def test_http_text_1_0_0_with_utf8_escaping(client: Client) -> None:
    """Prometheus 3's text/plain 1.0.0 with allow-utf-8: the stock content type and bytes."""
    resp, body = await scrape(client, Accept="text/plain;version=1.0.0;escaping=allow-utf-8")
    assert resp.headers["Content-Type"] == (
        "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
    )
    assert masked(body) == masked(stock_of(client.app))


async def test_http_other_escapings_fall_back_to_stock(client: Client) -> None:
    """escaping=dots rewrites names; the stock encoder does that."""
    _, body = await scrape(client, Accept="text/plain;version=1.0.0;escaping=dots")
    assert b"llm__requests__total" in body
    assert masked(body) == masked(generate_latest(client.app[keys.REGISTRY], escaping="dots"))


async def test_http_gzip(client: Client) -> None:
    """Accept-Encoding: gzip gets a gzip body of the same text."""
    resp, body = await scrape(client, **{"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert masked(gzip.decompress(body)) == masked(stock_of(client.app))


async def test_http_name_filter(client: Client) -> None:
    """`name[]` keeps only the named series, as the stock handler does."""
    resp = await client.get(
        "/metrics",
        params=[("name[]", "llm_sessions_active"), ("name[]", "llm_tokens_total")],
        headers={"Accept-Encoding": "identity"},
    )
    families = text_string_to_metric_families(await resp.text())
    assert {s.name for f in families for s in f.samples} == {
        "llm_sessions_active",
        "llm_tokens_total",
    }


async def test_http_concurrent_scrapes_during_ingest(client: Client) -> None:
    """Scrapes formatted in worker threads while events arrive: each body is whole and valid."""
    event = {"type": "llm_call", "provider": "openai", "model": "gpt-6-luna"}
    results = await asyncio.gather(
        *(scrape(client) for _ in range(4)),
        *(client.post("/api/v1/events", json=[{**event, "duration_seconds": 0.2}] * 50)
          for _ in range(4)),
    )  # fmt: skip
    assert all(r.status == 200 for r in results[4:])
    for _, body in results[:4]:
        assert body.endswith(b"\n")
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"llm_request_duration_seconds", "llm_sessions_active"} <= names
    _, after = await scrape(client)
    assert masked(after) == masked(stock_of(client.app))
    assert (
        client.app[keys.REGISTRY].get_sample_value(
            "llm_request_duration_seconds_count", {"provider": "openai", "model": "gpt-6-luna"}
        )
        == 201
    )  # 1 from populate() + 4 x 50
