"""Provider simulator: the eight providers' wire formats on one port, with faults set at runtime.

API roots come from `exporter.defaults.SIMULATOR_ROOTS`. Control API:
`POST /_sim/{provider}` with `{"mode", "latency_ms", "error_rate", "token_delay_ms"}` replaces
that provider's faults (omitted numbers take the mode's defaults), `GET /_sim` shows every
provider, `GET /_sim/{provider}` one, `POST /_sim/_reset` puts everything back to `ok`.

Modes (every mode first waits `latency_ms`, except `down`):
- ok: normal answers; latency 20-80 ms with seeded jitter unless `latency_ms` is given (then
  exact, no jitter); `error_rate` is the chance a request gets `server_error` instead.
- down: the connection is dropped without any HTTP response.
- slow: 3-5 s before the headers and 250 ms between streamed chunks (both overridable).
- hang: never answers; the handler ends when the client leaves or the simulator stops.
- rate_limit: 429 with the provider's rate-limit body, `retry-after` (OpenAI also
  `retry-after-ms`) where the provider sends one, and every remaining header at 0.
- overloaded: Anthropic 529, Kimi 429 engine_overloaded_error, Gemini/OpenAI/DeepSeek/Mistral/
  xAI/Qwen 503, each in the provider's body shape.
- auth: the provider's bad-key error (Gemini 400 API_KEY_INVALID, xAI 400, the rest 401).
- server_error: 500 with the provider's body.
- malformed: 200 with a body that is not valid JSON; streams send SSE lines with broken JSON.
- billing: out of credit (OpenAI 429 insufficient_quota, Anthropic/DeepSeek/Mistral 402,
  Kimi/xAI 403, Gemini 400 FAILED_PRECONDITION, Qwen 400 Arrearage).
- echo_key: the provider's auth error with the received key in the message and in the
  `x-sim-echo-key` header, to prove a client never leaks what it is told.

Any non-empty key is accepted. Except in down and hang, a request without one gets the
provider's missing-key error; Anthropic also needs `anthropic-version`. `serve()` logs method,
path and status only (never headers or the query string, where Gemini keys may travel).
"""

from __future__ import annotations

from exporter.simulator.app import create_app
from exporter.simulator.call import ECHO_HEADER
from exporter.simulator.server import serve
from exporter.simulator.state import MODES, SIM_STATE, SimState

__all__ = ["ECHO_HEADER", "MODES", "SIM_STATE", "SimState", "create_app", "serve"]
