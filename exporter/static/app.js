// Live updates for the status page: follow /ws/metrics and patch the server-rendered DOM.
"use strict";

(function () {
  const DASH = "\u2013";
  // Card fields: key -> [format, label]; page.py renders the same fields.
  const FIELDS = {
    probe_latency_seconds: ["seconds", "Probe"],
    p95_latency_seconds: ["seconds", "p95 (5m)"],
    requests_per_minute: ["number", "Req/min"],
    error_rate: ["percent", "Errors (5m)"],
    cost_today_usd: ["usd", "Cost today"],
  };

  function fmt(value, kind) {
    if (value === null || value === undefined) return DASH;
    if (kind === "seconds") return value < 1 ? `${(value * 1000).toFixed(0)} ms` : `${value.toFixed(2)} s`;
    if (kind === "percent") return `${(value * 100).toFixed(1)} %`;
    if (kind === "usd") return value >= 1 || value === 0 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function card(pid) {
    const list = document.getElementById("providers");
    for (const li of list.children) if (li.dataset.provider === pid) return li;
    const li = document.createElement("li");
    li.className = "card";
    li.dataset.provider = pid;
    const h3 = document.createElement("h3");
    const pill = document.createElement("span");
    pill.className = "pill";
    h3.append(pid + " ", pill);
    const dl = document.createElement("dl");
    for (const [key, [, label]] of Object.entries(FIELDS)) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.dataset.field = key;
      dl.append(dt, dd);
    }
    li.append(h3, dl);
    list.append(li);
    return li;
  }

  function renderProviders(providers) {
    for (const [pid, s] of Object.entries(providers || {})) {
      const li = card(pid);
      const status = s.status || "unknown";
      li.dataset.status = status;
      const pill = li.querySelector(".pill");
      pill.dataset.status = status;
      pill.textContent = status.replace("_", " ");
      for (const [key, [kind]] of Object.entries(FIELDS)) {
        const dd = li.querySelector(`dd[data-field="${key}"]`);
        if (dd) dd.textContent = fmt(s[key], kind);
      }
    }
  }

  function renderAlerts(alerts) {
    const list = document.getElementById("alerts");
    const items = (alerts && alerts.items) || [];
    const nodes = items.map((a) => {
      const li = document.createElement("li");
      li.dataset.severity = a.severity || "none";
      const strong = document.createElement("strong");
      strong.textContent = [a.alertname || "alert", a.provider].filter(Boolean).join(" \u00b7 ");
      li.append(strong);
      if (a.summary) {
        const span = document.createElement("span");
        span.textContent = a.summary;
        li.append(" ", span);
      }
      return li;
    });
    if (!nodes.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = alerts && alerts.error ? `unknown: ${alerts.error}` : "none";
      nodes.push(li);
    }
    list.replaceChildren(...nodes);
  }

  function renderDay(summary) {
    const totals = (summary && summary.totals) || {};
    const cost = (summary && summary.cost_analytics) || {};
    const values = {
      requests: fmt(totals.requests, "number"),
      success_rate: fmt(totals.success_rate, "percent"),
      p95_latency: fmt(totals.p95_latency, "seconds"),
      cost_usd: fmt(totals.cost_usd, "usd"),
      projected_monthly_cost_usd: fmt(cost.projected_monthly_cost_usd, "usd"),
    };
    for (const [key, text] of Object.entries(values)) {
      const dd = document.querySelector(`#day dd[data-field="${key}"]`);
      if (dd) dd.textContent = text;
    }
  }

  function apply(msg) {
    const banner = document.getElementById("banner");
    if (msg.type === "error") {
      banner.textContent = msg.error;
      banner.hidden = false;
      return;
    }
    banner.hidden = true;
    const m = msg.mobile || {};
    const overall = document.getElementById("overall");
    overall.dataset.status = m.status || "unknown";
    overall.textContent = m.status || "unknown";
    setText("cost-today", fmt(m.cost_today, "usd"));
    setText("rpm", fmt(m.requests_per_minute, "number"));
    setText("error-rate", fmt(m.error_rate, "percent"));
    setText("sessions", fmt(m.active_sessions, "number"));
    setText("alerts-count", fmt(msg.alerts ? msg.alerts.count : null, "number"));
    setText("updated", msg.timestamp || DASH);
    renderProviders(msg.providers);
    renderAlerts(msg.alerts);
    renderDay(msg.summary);
  }

  let delay = 1000;
  function connect() {
    const conn = document.getElementById("conn");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/metrics`);
    ws.onopen = () => {
      delay = 1000;
      conn.dataset.state = "live";
      conn.textContent = "live";
    };
    ws.onmessage = (event) => {
      apply(JSON.parse(event.data));
      document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
    };
    ws.onclose = () => {
      conn.dataset.state = "offline";
      conn.textContent = "reconnecting";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
