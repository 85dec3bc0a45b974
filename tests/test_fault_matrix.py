"""Provider fault matrix: every fault x wire family x check, over real loopback sockets.

Each cell starts a raw `FaultServer` (tests/_fault_servers.py) that misbehaves in one way, runs
the family's real prober against it and asserts the `reason`, the status, that nothing raised and
that the answer came within the timeout plus 0.5 s. The scheduler tests then run the real
`ProbeScheduler` to show that a stuck provider delays no other provider, that `retry-after`
defers only that provider's billable probes, and that a storm of 5xx answers is classified one
by one without growing any state. docs/reliability.md "Fault matrix" lists the same table.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _fault_servers import (
    WIRES,
    Behaviour,
    FaultServer,
    Wire,
    by_check,
    check_of,
    cycle,
    flood,
    hang,
    http_date,
    keepalive_forever,
    reset_mid_body,
    reset_mid_stream,
    respond,
    self_signed_cert,
    server_tls,
    stream,
    trickle,
    trickle_head,
)
from _probe_helpers import KEY, closed_port

from exporter.probestate import HISTORY_LEN, CheckState, ProbeStore, ProviderState
from exporter.providers import PROBERS, make_ssl_context, make_trace_config
from exporter.providers.base import ProbeResult, ProbeTarget
from exporter.providers.sse import SseParser
from exporter.scheduler import ProbeScheduler
from exporter.vocab import Check, Reason

R = Reason
FAMILIES = ("openai", "anthropic", "gemini")
ALL = (Check.MODELS, Check.COMPLETION, Check.STREAM)
BODIES = (Check.MODELS, Check.COMPLETION)
STREAM = (Check.STREAM,)
TIMEOUT = 0.5  # the provider timeout in the cells that must end in `timeout`
PROMPT = 2.0  # the provider timeout everywhere else (the answer must still come in time)
SLACK = 0.5  # a probe's answer may come this long after its timeout, never later
FLOOD = 5.0  # the timeout for parsing 1 MiB (STREAM_CAP) of tiny SSE lines (~0.35 s of CPU here)
FIFTY_MB = 50 << 20
MODEL = {"openai": "probe-model", "anthropic": "probe-model", "gemini": "gemini-2.5-flash-lite"}

Serve = Callable[[Wire, Check], Behaviour]


@dataclass(frozen=True)
class Fault:
    """One row of the matrix: how the server misbehaves and what every cell must report."""

    reason: Reason | dict[str, Reason]  # per family when the families' semantics differ
    serve: Serve | None = None  # None: no server (nothing listens, or the name does not resolve)
    checks: tuple[Check, ...] = ALL
    status: int | None = 200  # the HTTP status the result carries (None: no response)
    timeout: float = PROMPT
    retry_after: float | None = None
    retry_slack: float = 0.0  # an HTTP-date retry-after has whole-second resolution
    url: str = "plain"  # plain | tls (TLS server) | https (TLS client only) | refused | dns
    memory: bool = False  # trace the client's memory (the floods)
    max_stall: float = 0.1  # the longest another task may wait for the event loop (s; ~3 ms seen)
    extra: Callable[[Outcome], None] | None = None


@dataclass(frozen=True)
class Outcome:
    """What one cell observed."""

    result: ProbeResult
    server: FaultServer | None
    elapsed: float  # seconds the prober took
    stall: float  # the longest the event loop went without running another task


def _timed_out(seen: Outcome) -> None:
    """It was the timeout that ended the probe, not something earlier."""
    assert seen.elapsed >= TIMEOUT - 0.01
    assert seen.result.error == f"timed out after {TIMEOUT:g}s"


def _no_headers(seen: Outcome) -> None:
    _timed_out(seen)
    assert "first_byte" not in seen.result.phases


def _headers_then_stall(seen: Outcome) -> None:
    _timed_out(seen)
    assert "first_byte" in seen.result.phases and "first_token" not in seen.result.phases


def _bounded(seen: Outcome) -> None:
    """The client stopped reading long before 50 MB (what got out includes kernel buffers)."""
    assert seen.server is not None and seen.server.sent < 20 << 20, seen.server.sent


def _cap_reached(seen: Outcome) -> None:
    _bounded(seen)
    assert seen.result.error.startswith("stream larger than")


def _tls_refused(seen: Outcome) -> None:
    """Every connection opened with a TLS record; no handshake finished; no plain HTTP was sent."""
    server = seen.server
    assert server is not None and server.connections >= 1
    assert server.first_bytes and all(b.startswith(b"\x16\x03") for b in server.first_bytes)
    assert server.handshakes == 0 and server.requests == []
    assert "certificate" in seen.result.error.lower()


def _tls_stalled(seen: Outcome) -> None:
    _no_headers(seen)
    assert seen.server is not None and seen.server.requests == []
    assert all(b.startswith(b"\x16\x03") for b in seen.server.first_bytes)


def _bad_utf8(body: bytes) -> bytes:
    return body.replace(b'"', b'"\xff', 1)  # inside the first JSON string


def _invalid_json(wire: Wire, check: Check) -> Behaviour:
    if check is Check.STREAM:
        return stream([b'data: {"choices": [{"delta": \n\n'])
    return respond(200, wire.ok[check][:-3])


def _invalid_utf8(wire: Wire, check: Check) -> Behaviour:
    if check is Check.STREAM:
        return stream([*wire.first_events[:-1], _bad_utf8(wire.first_events[-1])])
    return respond(200, _bad_utf8(wire.ok[check]))


def _flood(wire: Wire, check: Check) -> Behaviour:
    if check is Check.STREAM:  # well-formed SSE that never ends: only the size cap stops it
        return flood(FIFTY_MB, declare=False, block=(b":" + b"p" * 1021 + b"\n\n") * 256,
                     content_type="text/event-stream")
    return flood(FIFTY_MB, declare=False, opening=wire.ok[check][:-2] + b", ")


def _keepalive_flood(wire: Wire, check: Check) -> Behaviour:
    """50 MB of 14-byte `: keep-alive` lines as fast as the socket takes them."""
    return flood(FIFTY_MB, declare=False, block=b": keep-alive\n\n" * 16384,
                 content_type="text/event-stream")


def _error(status: int, headers: dict[str, str] | None = None) -> Serve:
    return lambda wire, check: respond(status, wire.error(status), headers)


MATRIX: dict[str, Fault] = {
    # -- no HTTP answer at all -----------------------------------------------------------------
    "refused": Fault(R.NETWORK, status=None, url="refused"),
    "unresolvable_host": Fault(R.NETWORK, status=None, url="dns"),
    "tls_self_signed": Fault(R.NETWORK, lambda w, c: respond(200, w.ok[c]), status=None,
                             url="tls", extra=_tls_refused),
    "tls_handshake_stall": Fault(R.TIMEOUT, lambda w, c: hang(), status=None, url="https",
                                 timeout=TIMEOUT, checks=(Check.MODELS,), extra=_tls_stalled),
    "hang_before_headers": Fault(R.TIMEOUT, lambda w, c: hang(), status=None, timeout=TIMEOUT,
                                 extra=_no_headers),
    "slow_headers": Fault(R.TIMEOUT, lambda w, c: trickle_head(0.02), status=None,
                          timeout=TIMEOUT, checks=(Check.MODELS,), extra=_no_headers),
    # -- headers, then the body goes wrong -----------------------------------------------------
    "slow_loris_body": Fault(R.TIMEOUT, lambda w, c: trickle(w.ok[c], 0.02,
                                                             sse=c is Check.STREAM),
                             timeout=TIMEOUT, extra=_headers_then_stall),
    "keepalive_forever": Fault(R.TIMEOUT, lambda w, c: keepalive_forever(0.05), checks=STREAM,
                               timeout=TIMEOUT, extra=_headers_then_stall),
    "reset_mid_body": Fault(R.NETWORK, lambda w, c: reset_mid_body(w.ok[c][:20], len(w.ok[c])),
                            checks=BODIES),
    "reset_mid_stream": Fault(R.NETWORK, lambda w, c: reset_mid_stream(w.first_events),
                              checks=STREAM),
    "body_50mb": Fault(R.INVALID_RESPONSE, _flood, memory=True, extra=_bounded),
    "sse_keepalive_flood_50mb": Fault(R.INVALID_RESPONSE, _keepalive_flood, checks=STREAM,
                                      timeout=FLOOD, max_stall=1.0, extra=_cap_reached),
    "body_50mb_declared": Fault(R.INVALID_RESPONSE,
                                lambda w, c: flood(FIFTY_MB, declare=True), checks=BODIES,
                                memory=True, extra=_bounded),
    "error_body_50mb": Fault(R.SERVER_ERROR,
                             lambda w, c: flood(FIFTY_MB, declare=False, status=500,
                                                opening=w.error(500)),
                             status=500, memory=True, extra=_bounded),
    "invalid_json": Fault(R.INVALID_RESPONSE, _invalid_json),
    "wrong_shape": Fault(R.INVALID_RESPONSE, lambda w, c: (
        stream([w.wrong_shape[c]]) if c is Check.STREAM else respond(200, w.wrong_shape[c]))),
    "invalid_utf8": Fault(R.INVALID_RESPONSE, _invalid_utf8),
    "sse_without_content_delta": Fault(R.INVALID_RESPONSE, lambda w, c: stream(w.no_content),
                                       checks=STREAM),
    "sse_error_event": Fault({"openai": R.SERVER_ERROR, "anthropic": R.OVERLOADED,
                              "gemini": R.OVERLOADED},
                             lambda w, c: stream([*w.first_events, w.stream_error]),
                             checks=STREAM),
    # -- rate limits: the reason, and the hint when there is one --------------------------------
    "429_retry_after": Fault(R.RATE_LIMIT, _error(429, {"retry-after": "7"}), status=429,
                             retry_after=7.0),
    "429_retry_after_http_date": Fault(R.RATE_LIMIT, lambda w, c: respond(
        429, w.error(429), {"retry-after": http_date(30)}), status=429, retry_after=30.0,
        retry_slack=1.5, checks=(Check.COMPLETION,)),
    "429_without_retry_after": Fault(R.RATE_LIMIT, _error(429), status=429),
}


def _cells() -> Iterator[Any]:
    for fault_name, fault in MATRIX.items():
        for family in FAMILIES:
            for check in fault.checks:
                yield pytest.param(fault_name, family, check,
                                   id=f"{fault_name}-{family}-{check.value}")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client_tls() -> ssl.SSLContext:
    return make_ssl_context()  # loads the CA bundle: once, as the app does at start-up


@pytest.fixture
async def probe_session(client_tls: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session built the way the app builds its probing session (verifying TLS)."""
    connector = aiohttp.TCPConnector(ssl=client_tls, limit=64, ttl_dns_cache=60)
    async with aiohttp.ClientSession(trace_configs=[make_trace_config()],
                                     connector=connector) as session:
        yield session


def _target(family: str, url: str, timeout: float, provider: str | None = None) -> ProbeTarget:
    return ProbeTarget(provider=provider or family, api=family, base_url=url,
                       probe_model=MODEL[family], timeout=timeout, api_key=KEY)


@pytest.mark.parametrize(("fault_name", "family", "check"), list(_cells()))
async def test_fault_cell(fault_name, family, check, probe_session, cert) -> None:
    """One fault x family x check: the right reason, in time, and nothing raised."""
    fault, wire = MATRIX[fault_name], WIRES[family]
    server: FaultServer | None = None
    if fault.url == "refused":
        url = f"http://127.0.0.1:{closed_port()}{wire.root}"
    elif fault.url == "dns":
        url = f"http://nosuch.invalid{wire.root}"  # RFC 6761: never resolves
    else:
        assert fault.serve is not None
        tls = server_tls(*cert) if fault.url == "tls" else None
        server = await FaultServer(fault.serve(wire, check), tls=tls).start()
        url = server.url(wire.root)
        if fault.url == "https":  # the client speaks TLS to a server that never answers it
            url = url.replace("http:", "https:", 1)
    if fault.memory:
        tracemalloc.start()
    watch = asyncio.create_task(_watch_loop())
    try:
        started = time.perf_counter()
        result = await PROBERS[family](probe_session, _target(family, url, fault.timeout), check)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if fault.memory else 0
    finally:
        watch.cancel()
        if fault.memory:
            tracemalloc.stop()
        if server is not None:
            await server.close()
    stall = await watch
    expected = fault.reason if isinstance(fault.reason, Reason) else fault.reason[family]
    assert isinstance(result, ProbeResult) and not result.success
    assert result.reason is expected, (result.reason, result.error)
    assert result.status == fault.status
    assert elapsed <= fault.timeout + SLACK, elapsed
    if fault.retry_after is None:
        assert result.retry_after is None
    else:
        assert result.retry_after == pytest.approx(fault.retry_after, abs=fault.retry_slack)
    assert KEY not in result.error and result.error
    if fault.memory:
        assert peak < 16 << 20, peak  # a buffered 50 MB body would be far above this
    else:  # (tracing memory slows everything, so the loop is only watched without it)
        assert stall < fault.max_stall, stall
    if fault.extra is not None:
        fault.extra(Outcome(result, server, elapsed, stall))


async def _watch_loop() -> float:
    """Tick every 10 ms until cancelled; return the longest gap beyond the tick."""
    worst, last = 0.0, time.perf_counter()
    try:
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            worst, last = max(worst, now - last - 0.01), now
    except asyncio.CancelledError:
        return worst


def test_sse_parser_cost_is_linear_in_chunk_size() -> None:
    """Guards the keep-alive flood: line ends were found by rescanning the rest of the chunk
    for every line, so a big chunk of short lines cost time quadratic in its size."""
    def cost(lines: int) -> float:
        data, best = b": keep-alive\n\n" * lines, float("inf")
        for _ in range(3):
            parser, started = SseParser(), time.perf_counter()
            parser.feed(data)
            best = min(best, time.perf_counter() - started)
        return best

    small, big = cost(4096), cost(8 * 4096)
    assert big < 16 * small, (small, big)  # linear: ~8x; quadratic: ~30x and growing


@pytest.mark.parametrize("family", FAMILIES)
async def test_tls_control_the_same_server_works_when_its_cert_is_trusted(family, cert) -> None:
    """The tls cells fail because of the certificate alone: trusting it makes every check pass."""
    wire = WIRES[family]
    server = await FaultServer(by_check(respond(200, wire.ok[Check.MODELS]),
                                        respond(200, wire.ok[Check.COMPLETION]),
                                        stream([wire.ok[Check.STREAM]])),
                               tls=server_tls(*cert)).start()
    connector = aiohttp.TCPConnector(ssl=make_ssl_context(cafile=str(cert[0])))
    try:
        async with aiohttp.ClientSession(trace_configs=[make_trace_config()],
                                         connector=connector) as session:
            for check in ALL:
                result = await PROBERS[family](session, _target(family, server.url(wire.root),
                                                                PROMPT), check)
                assert result.success, (check, result.error)
    finally:
        await server.close()
    assert server.handshakes >= 1 and len(server.requests) == 3


# -- the scheduler under faults -------------------------------------------------------------------

INTERVAL = 0.1


def _store(targets: dict[str, ProbeTarget]) -> ProbeStore:
    store = ProbeStore()
    for pid, t in targets.items():
        state = ProviderState(pid, t.api, "127.0.0.1", t.probe_model, True, (t.probe_model,))
        state.checks = {c: CheckState(interval=INTERVAL) for c in ALL}
        store.add_provider(state)
    return store


def _healthy(wire: Wire) -> Behaviour:
    return by_check(respond(200, wire.ok[Check.MODELS]), respond(200, wire.ok[Check.COMPLETION]),
                    stream([wire.ok[Check.STREAM]]))


async def _run(
    behaviours: dict[str, tuple[str, Behaviour, float]], seconds: float,
) -> tuple[ProbeStore, dict[str, FaultServer], float]:
    """Run the real scheduler over one server per provider (provider -> family, behaviour,
    timeout) for `seconds`; returns the store, the servers and the start time."""
    servers = {pid: await FaultServer(b).start() for pid, (_, b, _) in behaviours.items()}
    targets = {pid: _target(fam, servers[pid].url(WIRES[fam].root), timeout, pid)
               for pid, (fam, _, timeout) in behaviours.items()}
    store = _store(targets)
    try:
        async with aiohttp.ClientSession(trace_configs=[make_trace_config()]) as session:
            sched = ProbeScheduler(store, session, targets,
                                   {pid: dict.fromkeys(ALL, INTERVAL) for pid in targets},
                                   PROBERS, startup_spread=0.0, rng=random.Random(7))
            started = time.monotonic()
            sched.start()
            await asyncio.sleep(seconds)  # the observation window, not a synchronisation
            await sched.stop()
    finally:
        for server in servers.values():
            await server.close()
    return store, servers, started


def _arrivals(server: FaultServer, *checks: Check) -> list[float]:
    return sorted(r.at for r in server.requests if check_of(r) in checks)


@pytest.mark.parametrize("stuck", FAMILIES)
async def test_a_stuck_provider_does_not_delay_the_others(stuck) -> None:
    """One provider hangs, trickles and keeps streams open; the others keep their cadence."""
    wire = WIRES[stuck]
    jam = by_check(hang(), trickle(wire.ok[Check.COMPLETION], 0.02), keepalive_forever(0.05))
    plan = {f: (f, jam if f == stuck else _healthy(WIRES[f]), TIMEOUT) for f in FAMILIES}
    store, servers, started = await _run(plan, 1.3)
    for family in FAMILIES:
        for check in ALL:
            times = _arrivals(servers[family], check)
            state = store.providers[family].checks[check]
            if family == stuck:
                assert len(times) >= 2  # its own loop goes on after each timeout
                assert state.last is not None and state.last.reason is R.TIMEOUT
                assert state.failures[R.TIMEOUT] >= 1 and not state.last_success
                assert state.last.duration <= TIMEOUT + SLACK
            else:
                assert times[0] - started < 0.1
                gaps = [b - a for a, b in itertools.pairwise(times)]
                assert len(times) >= 8 and max(gaps) < INTERVAL * 1.1 + 0.1, (check, gaps)
                assert state.last is not None and state.last.success


def _first_then(first: Behaviour, rest: Behaviour) -> Behaviour:
    return cycle(first, *[rest] * 1000)


@pytest.mark.parametrize("family", FAMILIES)
async def test_retry_after_defers_that_providers_billable_probes_only(family) -> None:
    """A 429 with retry-after: 1 holds back that provider's billable checks for 1 s; its free
    model list, a provider rate-limited without retry-after, and other providers carry on."""
    wire, other = WIRES[family], FAMILIES[(FAMILIES.index(family) + 1) % 3]
    limited = by_check(respond(200, wire.ok[Check.MODELS]),
                       _first_then(respond(429, wire.error(429), {"retry-after": "1"}),
                                   respond(200, wire.ok[Check.COMPLETION])),
                       stream([wire.ok[Check.STREAM]]))
    unhinted = by_check(respond(200, wire.ok[Check.MODELS]), respond(429, wire.error(429)),
                        stream([wire.ok[Check.STREAM]]))
    plan = {"limited": (family, limited, PROMPT), "unhinted": (family, unhinted, PROMPT),
            other: (other, _healthy(WIRES[other]), PROMPT)}
    store, servers, _ = await _run(plan, 1.6)
    t429 = _arrivals(servers["limited"], Check.COMPLETION)[0]
    window = (t429 + 0.05, t429 + 1.0)

    def inside(pid: str, *checks: Check) -> int:
        return sum(window[0] < t < window[1] for t in _arrivals(servers[pid], *checks))

    billable = (Check.COMPLETION, Check.STREAM)
    assert inside("limited", *billable) == 0
    resumed = [t for t in _arrivals(servers["limited"], *billable) if t >= window[1]]
    assert resumed and resumed[0] < window[1] + INTERVAL * 1.1 + 0.15
    assert inside("limited", Check.MODELS) >= 7
    assert inside("unhinted", Check.COMPLETION) >= 7
    assert inside(other, Check.COMPLETION) >= 7 and inside(other, Check.STREAM) >= 7
    assert store.providers["limited"].checks[Check.COMPLETION].failures[R.RATE_LIMIT] == 1
    assert store.providers["unhinted"].not_before == 0 and store.providers[other].not_before == 0
    unhinted_last = store.providers["unhinted"].checks[Check.COMPLETION].last
    assert unhinted_last is not None and unhinted_last.retry_after is None


async def test_a_longer_retry_after_arriving_during_a_deferral_is_honoured() -> None:
    """retry-after: 1 on a completion, then retry-after: 2 on the model list half a second later:
    no billable probe may go out before the later deadline."""
    wire = WIRES["openai"]
    long_hint = respond(429, wire.error(429), {"retry-after": "2"})
    ok_models = respond(200, wire.ok[Check.MODELS])
    models = cycle(*[ok_models] * 5, long_hint, *[ok_models] * 1000)  # the 6th list, ~0.5 s in
    plan = {"p": ("openai", by_check(
        models,
        _first_then(respond(429, wire.error(429), {"retry-after": "1"}),
                    respond(200, wire.ok[Check.COMPLETION])),
        stream([wire.ok[Check.STREAM]])), PROMPT)}
    _, servers, _ = await _run(plan, 2.9)
    lists = _arrivals(servers["p"], Check.MODELS)
    t_long = lists[5]
    assert t_long - _arrivals(servers["p"], Check.COMPLETION)[0] < 1.0  # inside the first wait
    billable = _arrivals(servers["p"], Check.COMPLETION, Check.STREAM)
    early = [t - t_long for t in billable if t_long < t < t_long + 2.0]
    assert early == []
    assert any(t >= t_long + 2.0 for t in billable)  # and it does resume


STORM = {500: R.SERVER_ERROR, 502: R.SERVER_ERROR, 503: R.OVERLOADED, 504: R.TIMEOUT,
         529: R.OVERLOADED}


@pytest.mark.parametrize("family", FAMILIES)
async def test_5xx_storm_is_classified_each_time_without_growing_state(family) -> None:
    """750 probes against 500/502/503/504/529 in turn (a 502 from a proxy as HTML): each is
    classified, nothing raises, connections are reused, and state and memory stay flat."""
    wire = WIRES[family]
    statuses = list(STORM)
    answers = [respond(s, b"<html>Bad Gateway</html>", content_type="text/html") if s == 502
               else respond(s, wire.error(s)) for s in statuses]
    server = await FaultServer(cycle(*answers)).start()
    t = _target(family, server.url(wire.root), PROMPT)
    store = _store({family: t})
    block = HISTORY_LEN * len(ALL)  # probes that refill every check's history once
    kept: list[int] = []  # bytes still held (traced from the end of the first block) per block

    def checkpoint() -> None:  # what the exporter keeps (not the test server's request log)
        server.requests.clear()
        gc.collect()
        kept.append(tracemalloc.get_traced_memory()[0])

    try:
        async with aiohttp.ClientSession() as session:
            sched = ProbeScheduler(store, session, {family: t}, {family: {}}, PROBERS)
            for n in range(5 * block):
                if n == block:
                    tracemalloc.start()
                elif n > block and n % block == 0:
                    checkpoint()
                result = await sched.probe_once(t, ALL[n % 3])
                assert result.reason is STORM[statuses[n % len(statuses)]], result.error
                assert result.status == statuses[n % len(statuses)]
            checkpoint()
            tracemalloc.stop()
    finally:
        await server.close()
    pstate, total = store.providers[family], 5 * block // len(ALL)
    for check in ALL:
        state = pstate.checks[check]
        assert state.probes == total and len(state.history) == HISTORY_LEN
        assert set(state.failures) <= set(STORM.values())
        assert sum(state.failures.values()) == total and state.last_success is None
    assert pstate.ratelimits == {} and pstate.not_before == 0 and pstate.models_seen is None
    assert server.connections <= 2, server.connections  # error bodies drained, sockets reused
    # allocator noise swings ~30 KiB either way; a leak of ~110 bytes a probe would pass 48 KiB
    assert max(kept) - min(kept) < 48 << 10, kept
