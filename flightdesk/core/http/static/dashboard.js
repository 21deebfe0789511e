// The flightdesk dashboard: plain JavaScript over the desk's HTTP API (no build step).
// Live data comes from /events (server-sent events read with fetch, so the bearer token
// goes in a header, never the URL); tables and the PnL series are polled every 2 s.
"use strict";

const state = {
  token: sessionStorage.getItem("flightdesk-token") || "",
  tokens: false,              // the desk has tokens (the page says so: data-tokens)
  role: "",                   // what the token may do: "read" or "trade"
  quotes: new Map(),          // "venue:symbol" -> latest quote row
  series: new Map(),          // "venue:symbol" -> {x: [], y: []} of mids
  fills: [],                  // newest first
  pnl: new Map(),             // strategy -> {x: [], y: []}
  killed: null,
  pending: null,              // a control call waiting for a token
  charts: typeof window.Plotly !== "undefined",
  drawn: 0,
};
const MAX_POINTS = 1200;
const MAX_FILLS = 200;
const $ = (id) => document.getElementById(id);

// -- the API --------------------------------------------------------------------------
class AuthNeeded extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, body) {
  const opts = { headers: {} };
  if (state.token) opts.headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({ error: resp.statusText }));
  if (resp.status === 401 || resp.status === 403) throw new AuthNeeded(resp.status, data.error);
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function askToken(why) {
  $("token-why").textContent = why;
  $("token-form").hidden = false;
  $("token").focus();
}

function say(text) { $("message").textContent = text; }

async function control(path, body, what) {
  if (state.tokens && state.role !== "trade") {  // ask first: no call refused for lack of one
    state.pending = () => control(path, body, what);
    askToken(what + " needs a trade token");
    return null;
  }
  try {
    const out = await api(path, body);
    say(what + ": done");
    pollSoon();
    return out;
  } catch (err) {
    if (err instanceof AuthNeeded) {
      state.pending = () => control(path, body, what);
      askToken(what + " needs a trade token");
    } else {
      say(what + " failed: " + err.message);
    }
    return null;
  }
}

// -- live events ------------------------------------------------------------------------
async function streamEvents() {
  for (;;) {
    try {
      const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
      const resp = await fetch("/events?streams=quotes,fills,orders,risk&interval_ms=250",
                               { headers });
      if (resp.status === 401 || resp.status === 403) {
        setConn(false, "needs a token");
        askToken("this desk needs a read token");
        await waitForToken();
        continue;
      }
      if (!resp.ok || !resp.body) throw new Error("events: " + resp.status);
      setConn(true, "live");
      await readEvents(resp.body.getReader());
    } catch (err) {
      setConn(false, "reconnecting");
    }
    await sleep(2000);
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function onEvent(name, data) {
  if (name === "quotes") data.forEach(onQuote);
  else if (name === "fills") { data.forEach(onFill); renderFills(); }
  else if (name === "risk") onRisk(data);
  else if (name === "drops") say("events dropped (slow connection): " + JSON.stringify(data));
  else if (name === "orders") pollSoon();
  if (name === "quotes" || name === "fills") drawPrice();
}

function onQuote(q) {
  const key = q.venue + ":" + q.symbol;
  const fresh = !state.quotes.has(key);
  state.quotes.set(key, q);
  let s = state.series.get(key);
  if (!s) { s = { x: [], y: [] }; state.series.set(key, s); }
  if (q.mid !== null) {
    s.x.push(utc(q.ts_recv / 1e6)); s.y.push(q.mid);
    if (s.x.length > MAX_POINTS) { s.x.shift(); s.y.shift(); }
  }
  if (fresh) {
    const opt = document.createElement("option");
    opt.value = key; opt.textContent = key;
    $("instrument").appendChild(opt);
  }
  renderQuote(key, q);
}

function onFill(f) {
  state.fills.unshift(f);
  if (state.fills.length > MAX_FILLS) state.fills.pop();
}

function onRisk(r) {
  state.killed = r.kill_switch;
  const mode = $("risk-mode");
  mode.textContent = r.risk_mode.mode + (r.risk_mode.reason ? " (" + r.risk_mode.reason + ")" : "");
  mode.className = "pill " + r.risk_mode.mode;
  const kill = $("kill-state");
  kill.textContent = r.kill_switch ? "ON" : "off";
  kill.className = "pill " + (r.kill_switch ? "killed" : "on");
  $("kill").textContent = r.kill_switch ? "resume trading" : "KILL";
}

function setConn(live, text) {
  const el = $("conn");
  el.textContent = text;
  el.className = "pill " + (live ? "on" : "off");
}

// -- rendering ----------------------------------------------------------------------------
const fmt = (v, d = 2) => (v === null || v === undefined ? "" : Number(v).toFixed(d));
const px = (v) => (v === null || v === undefined ? "" : String(v));
// UTC, 24 h, to the millisecond: the desk's times are UTC everywhere (tail, reports)
const time = (ns) => new Date(ns / 1e6).toISOString().slice(11, 23);
// chart x values: UTC wall-clock strings (Plotly draws Date objects in the browser's zone)
const utc = (ms) => new Date(ms).toISOString().replace("Z", "");

function cells(tr, values) {
  for (const v of values) {
    const td = document.createElement("td");
    if (v instanceof Node) td.appendChild(v); else td.textContent = v;
    tr.appendChild(td);
  }
  return tr;
}

function renderQuote(key, q) {
  let tr = document.querySelector(`#book tr[data-key="${CSS.escape(key)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.key = key;
    $("book").tBodies[0].appendChild(tr);
  }
  tr.replaceChildren();
  cells(tr, [q.venue, q.symbol, px(q.bid_px), px(q.bid_qty), px(q.ask_px), px(q.ask_qty),
             fmt(q.spread_bps, 3), time(q.ts_recv)]);
  tr.children[2].className = "bid"; tr.children[4].className = "ask";
}

function renderFills() {
  const body = $("fills").tBodies[0];
  body.replaceChildren(...state.fills.slice(0, 50).map((f) => {
    const tr = cells(document.createElement("tr"), [time(f.ts), f.strategy, f.symbol, f.side,
      px(f.price), px(f.qty), fmt(f.fee, 4), f.liquidity]);
    tr.dataset.fill = f.fill_id;
    tr.children[3].className = f.side;
    return tr;
  }));
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function renderOrders(open) {
  $("orders").tBodies[0].replaceChildren(...open.map((o) => {
    const cancel = button("cancel", () => control(
      "/orders/" + encodeURIComponent(o.order_id) + "/cancel", {}, "cancel " + o.order_id));
    const tr = cells(document.createElement("tr"), [time(o.ts), o.strategy, o.symbol, o.side,
      o.order_type, px(o.qty), px(o.limit_px), px(o.filled_qty), cancel]);
    tr.dataset.order = o.order_id;
    return tr;
  }));
}

function renderPositions(out) {
  $("positions").tBodies[0].replaceChildren(...out.positions.map((p) => cells(
    document.createElement("tr"), [p.strategy || "desk", p.venue, p.symbol, fmt(p.qty, 6),
      fmt(p.avg_price), fmt(p.realized_pnl), fmt(p.unrealized_pnl), fmt(p.fees)])));
  const now = utc(out.ts ? out.ts / 1e6 : Date.now());
  for (const [name, v] of Object.entries(out.pnl)) {
    let s = state.pnl.get(name);
    if (!s) { s = { x: [], y: [] }; state.pnl.set(name, s); }
    s.x.push(now); s.y.push(v.pnl);
    if (s.x.length > MAX_POINTS) { s.x.shift(); s.y.shift(); }
  }
  drawPnl();
}

function renderStatus(st) {
  onRisk({ kill_switch: st.kill_switch, risk_mode: st.risk_mode });
  const dl = $("risk-limits");
  const items = Object.entries(st.risk_limits || {});
  items.push(["open orders", st.open_orders], ["PnL", fmt(st.pnl.pnl)],
             ["tick-to-trade p99 µs", st.tick_to_trade_us.p99 ?? ""]);
  dl.replaceChildren(...items.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(v);
    return [dt, dd];
  }));
  $("strategies").tBodies[0].replaceChildren(...st.strategies.map((s) => {
    const toggle = button(s.enabled ? "disable" : "enable", () => control(
      "/strategies/" + encodeURIComponent(s.name), { enabled: !s.enabled },
      (s.enabled ? "disable " : "enable ") + s.name));
    const what = s.quarantined ? "quarantined" : s.enabled ? "enabled" : "disabled";
    const tr = cells(document.createElement("tr"), [s.name, s.type, what, s.batches,
      s.signals, s.errors, toggle]);
    tr.dataset.strategy = s.name;
    return tr;
  }));
}

// -- charts ------------------------------------------------------------------------------
const LAYOUT = {
  margin: { l: 60, r: 10, t: 28, b: 30 }, paper_bgcolor: "#171c22", plot_bgcolor: "#171c22",
  font: { color: "#d8dee6", size: 11 }, showlegend: true,
  legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
  xaxis: { gridcolor: "#2a3139", automargin: true },
  yaxis: { gridcolor: "#2a3139", exponentformat: "none", separatethousands: true },
};
const CONFIG = { displayModeBar: false, responsive: true };

function drawPrice() {
  if (!state.charts) return;
  const now = Date.now();
  if (now - state.drawn < 500) return;   // at most twice a second
  state.drawn = now;
  const key = $("instrument").value;
  const s = state.series.get(key);
  if (!s) return;
  const [venue, symbol] = key.split(":");
  const traces = [{ x: s.x, y: s.y, name: "mid", mode: "lines", line: { color: "#6cb6ff" } }];
  for (const side of ["buy", "sell"]) {
    const f = state.fills.filter((f) => f.venue === venue && f.symbol === symbol && f.side === side);
    traces.push({ x: f.map((f) => utc(f.ts / 1e6)), y: f.map((f) => f.price),
                  name: side + " fills", mode: "markers",
                  marker: { size: 9, symbol: side === "buy" ? "triangle-up" : "triangle-down",
                            color: side === "buy" ? "#2fbf71" : "#e5534b" } });
  }
  Plotly.react("price-chart", traces, LAYOUT, CONFIG);
}

function drawPnl() {
  if (!state.charts) return;
  const traces = [...state.pnl].map(([name, s]) => ({ x: s.x, y: s.y, name, mode: "lines" }));
  Plotly.react("pnl-chart", traces, LAYOUT, CONFIG);
}

// -- polling -------------------------------------------------------------------------------
let pollTimer = null;
function pollSoon() { clearTimeout(pollTimer); pollTimer = setTimeout(poll, 200); }

async function poll() {
  clearTimeout(pollTimer);
  try {
    const [st, pos, ord] = await Promise.all([api("/status"), api("/positions"),
                                              api("/orders?limit=20")]);
    renderStatus(st); renderPositions(pos); renderOrders(ord.open);
  } catch (err) {
    if (err instanceof AuthNeeded) askToken("this desk needs a read token");
    else say("poll failed: " + err.message);
  }
  pollTimer = setTimeout(poll, 2000);
}

async function loadFills() {
  try {
    const out = await api("/fills?limit=" + MAX_FILLS);
    state.fills = out.fills;
    renderFills();
  } catch (err) { /* poll() says what is wrong */ }
}

// -- start ----------------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let tokenWaiters = [];
const waitForToken = () => new Promise((r) => tokenWaiters.push(r));

async function checkToken() {
  try {
    state.role = (await api("/whoami")).role;
    return true;
  } catch (err) {
    askToken(err instanceof AuthNeeded ? "unknown token: try another" : err.message);
    return false;
  }
}

async function start() {
  state.tokens = document.body.dataset.tokens === "yes";
  if (!state.charts) document.querySelectorAll(".no-charts").forEach((e) => { e.hidden = false; });
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    $("token-form").hidden = true;
    say("");
    if (!(await checkToken())) return;
    sessionStorage.setItem("flightdesk-token", state.token);
    tokenWaiters.forEach((r) => r()); tokenWaiters = [];
    const pending = state.pending; state.pending = null;
    if (pending) pending();
    loadFills(); pollSoon();
  });
  $("kill").addEventListener("click", () => control("/kill", { on: !state.killed },
    state.killed ? "resume trading" : "kill switch"));
  $("cancel-all").addEventListener("click", () => control("/cancel-all", {}, "cancel all"));
  $("flatten").addEventListener("click", () => control("/flatten", {}, "flatten"));
  $("instrument").addEventListener("change", () => { state.drawn = 0; drawPrice(); });
  if (state.tokens && !(state.token && await checkToken())) {
    if (!state.token) askToken("this desk needs a token (read, or trade for control)");
    await waitForToken();
  }
  loadFills();
  poll();
  streamEvents();
}

document.addEventListener("DOMContentLoaded", start);
