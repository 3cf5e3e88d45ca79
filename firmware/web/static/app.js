// The charger's page: status and meter by server-sent events (/api/events), the power plot on
// a canvas, the configuration keys, the log, the bench buttons and the login.  No library and
// no request outside this charger; every text from the charger goes in as textContent.
"use strict";

const FAULTS = ["rcd", "estop", "weld", "lock", "meter", "diode", "grid-meter"];
const state = { csrf: null, loggedIn: false, passwordSet: false, bench: false,
                status: null, live: {}, plot: "session", history: null };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf || "" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok && data.ok === undefined) data.ok = false;
  return data;
}

const fmt = (v, digits = 1, unit = "") =>
  v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit ? " " + unit : ""}`;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// ------------------------------------------------------------------ status

function renderStatus(s) {
  state.status = s;
  $("#cp-id").textContent = `Charge point ${s.charge_point.id}`;
  const c = s.connection;
  $("#connection").textContent =
    `${c.registered ? "connected" : c.connected ? "connected, not registered" : "offline"} · ` +
    `${c.url} · security profile ${c.security_profile} · since ${when(c.connected_since)} · ` +
    `last message ${when(c.last_message)}`;
  $("#outbox").textContent = s.outbox;
  const box = $("#connectors");
  const meters = $("#meters");
  box.replaceChildren();
  meters.replaceChildren();
  for (const [id, k] of Object.entries(s.connectors)) {
    const t = k.transaction;
    box.append(el("div", { class: "connector", id: `connector-${id}` },
      el("h3", {}, `Connector ${id}: `,
        el("span", { class: `status ${k.status}`, id: `status-${id}` }, k.status)),
      el("dl", {},
        el("dt", {}, "Error code"), el("dd", { id: `error-${id}` }, k.error),
        el("dt", {}, "Plug / lock / contactor"),
        el("dd", {}, `${k.plugged ? "plugged" : "unplugged"} / ` +
          `${k.locking ? "moving" : k.locked ? "locked" : "unlocked"} / ` +
          `${k.contactor_closed ? "closed" : "open"}`),
        el("dt", {}, "Offered current"), el("dd", {}, fmt(k.offered_a, 1, "A")),
        el("dt", {}, "Transaction"),
        el("dd", { id: `transaction-${id}` }, t
          ? `#${t.local_id} · idTag ${t.id_tag} · since ${when(t.started_at)} · ` +
            `${fmt(t.energy_wh === null ? null : t.energy_wh / 1000, 3, "kWh")}`
          : "none"))));
    const m = k.meter || {};
    const phases = (xs, unit) => (xs || []).map((x) => fmt(x, 1)).join(" / ") + ` ${unit}`;
    meters.append(el("dl", { class: "connector" },
      el("dt", {}, `Connector ${id} power`),
      el("dd", { id: `power-${id}` }, fmt(m.power_w === undefined ? null : m.power_w / 1000, 2, "kW")),
      el("dt", {}, "Current L1/L2/L3"), el("dd", {}, phases(m.current_a, "A")),
      el("dt", {}, "Voltage L1/L2/L3"), el("dd", {}, phases(m.voltage_v, "V")),
      el("dt", {}, "Energy"),
      el("dd", {}, fmt(m.energy_wh === null || m.energy_wh === undefined ? null
                                                                 : m.energy_wh / 1000, 3, "kWh"))));
    const live = (state.live[id] = state.live[id] || []);
    live.push([Date.parse(s.at) / 1000, (m.power_w || 0) / 1000]);
    if (live.length > 3600) live.shift();
  }
  fillSelect($("#plot-connector"), Object.keys(s.connectors));
  fillSelect($("#bench-connector"), Object.keys(s.connectors));
  drawPlot();
}

function fillSelect(select, ids) {
  if (select.options.length === ids.length) return;
  select.replaceChildren(...ids.map((id) => el("option", { value: id }, id)));
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
  source.onerror = () => { $("#connection").textContent = "page lost the charger: reconnecting…"; };
}

// ------------------------------------------------------------------ power plot

async function loadHistory() {
  const id = $("#plot-connector").value || "1";
  state.history = await api(`/api/history?connector=${encodeURIComponent(id)}`);
  drawPlot();
}

function plotPoints() {
  const id = $("#plot-connector").value || "1";
  const h = state.history && String(state.history.connector) === id ? state.history : null;
  const day = h ? h.day : [];
  if (state.plot === "day") return day;
  const start = state.status && state.status.connectors[id] && state.status.connectors[id].transaction
    ? Date.parse(state.status.connectors[id].transaction.started_at) / 1000 : null;
  if (start === null) return [];
  const live = (state.live[id] || []).filter((p) => p[0] >= start);
  const older = day.filter((p) => p[0] >= start && (!live.length || p[0] < live[0][0]));
  return older.concat(live);
}

function drawPlot() {
  const canvas = $("#plot");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, B = 24;
  ctx.fillStyle = "#fbfcfd";
  ctx.fillRect(0, 0, W, H);
  const points = plotPoints();
  const maxKw = Math.max(1, ...points.map((p) => p[1])) * 1.1;
  ctx.strokeStyle = "#d7dde3"; ctx.fillStyle = "#66727f"; ctx.font = "12px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = 8 + ((H - B - 8) * i) / 4;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - 8, y); ctx.stroke();
    ctx.fillText(`${(maxKw * (1 - i / 4)).toFixed(1)} kW`, 2, y + 4);
  }
  canvas.dataset.points = String(points.length);
  if (points.length < 2) {
    ctx.fillText(state.plot === "day" ? "no samples yet" : "no session running", L + 10, H / 2);
    return;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0], span = Math.max(1, t1 - t0);
  const x = (t) => L + ((W - 8 - L) * (t - t0)) / span;
  const y = (kw) => 8 + (H - B - 8) * (1 - kw / maxKw);
  ctx.fillText(new Date(t0 * 1000).toLocaleTimeString(), L, H - 6);
  ctx.fillText(new Date(t1 * 1000).toLocaleTimeString(), W - 90, H - 6);
  ctx.strokeStyle = "#0b63b6"; ctx.lineWidth = 2; ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
  ctx.stroke(); ctx.lineWidth = 1;
}

// ------------------------------------------------------------------ keys

async function loadKeys() {
  const data = await api("/api/keys");
  const body = $("#keys tbody");
  body.replaceChildren();
  for (const k of data.keys || []) {
    const editable = !k.readonly && state.loggedIn;
    const value = editable
      ? el("input", { value: k.value, id: `key-${k.key}`, title: k.description })
      : el("span", { id: `key-${k.key}`, title: k.description }, k.value);
    const pending = k.pending !== null ? ` (after reboot: ${k.pending})` : "";
    const save = editable ? el("button", { type: "button", "data-key": k.key }, "Save") : "";
    if (save) save.addEventListener("click", () => changeKey(k.key));
    body.append(el("tr", { "data-name": k.key.toLowerCase() },
      el("td", {}, k.key), el("td", {}, value, pending), el("td", {}, k.readonly ? "R" : "RW"),
      el("td", {}, k.source), el("td", { id: `key-answer-${k.key}` }, save)));
  }
  filterKeys();
  $("#keys-note").textContent = state.loggedIn
    ? "Changes are checked and stored as a ChangeConfiguration from the central system is."
    : state.passwordSet ? "Log in to change keys." : "Read-only: no password is set in [web].";
}

function filterKeys() {
  const filter = $("#keys-filter").value.toLowerCase();
  document.querySelectorAll("#keys tbody tr").forEach((row) => {
    row.hidden = Boolean(filter) && !row.dataset.name.includes(filter);
  });
}

async function changeKey(key) {
  const answer = await api("/api/keys", { key, value: $(`#key-${CSS.escape(key)}`).value });
  const cell = $(`#key-answer-${CSS.escape(key)}`);
  cell.replaceChildren(el("span", { class: answer.ok ? "answer-ok" : "answer-bad",
                                    id: `key-status-${key}` },
                          answer.status || "Error", answer.reason ? `: ${answer.reason}` : ""));
  if (answer.ok) {  // the row shows the value now in force and its source
    const row = (await api("/api/keys")).keys.find((k) => k.key === key);
    if (row) $(`#key-${CSS.escape(key)}`).closest("tr").children[3].textContent = row.source;
  }
}

// ------------------------------------------------------------------ log

async function loadLog() {
  const kind = $("#log-kind").value, q = $("#log-filter").value;
  const data = await api(`/api/log?kind=${encodeURIComponent(kind)}&q=${encodeURIComponent(q)}`);
  const pre = $("#log");
  pre.textContent = (data.lines || []).join("\n");
  pre.scrollTop = pre.scrollHeight;
}

// ------------------------------------------------------------------ bench

async function bench(cmd, extra) {
  const connector = Number($("#bench-connector").value || 1);
  const answer = await api("/api/bench", { cmd, connector, ...extra });
  const out = $("#bench-answer");
  out.className = answer.ok ? "answer-ok" : "answer-bad";
  const c = answer.connectors && answer.connectors[String(connector)];
  out.textContent = !answer.ok ? `${cmd}: ${answer.error}`
    : c ? `${cmd}: done; connector ${connector} ${c.status} (${c.error})` : `${cmd}: done`;
  return answer;
}

function setupBench() {
  document.querySelectorAll(".bench button[data-cmd]").forEach((b) => {
    b.addEventListener("click", () => {
      const cmd = b.dataset.cmd;
      if (cmd === "swipe") bench(cmd, { tag: $("#bench-tag").value });
      else if (cmd === "house-load") {
        bench(cmd, { amps: $("#bench-house").value.split(/[ ,]+/).filter(Boolean).map(Number) });
      } else bench(cmd, {});
    });
  });
  // Two buttons per fault, as `chargepoint bench fault NAME on|off`: no state kept here that
  // could disagree with the bench's.
  const faults = $("#bench-faults");
  faults.append("Faults: ");
  for (const name of FAULTS) {
    const group = el("span", { class: "fault" }, `${name} `);
    for (const value of ["on", "off"]) {
      const b = el("button", { type: "button", "data-fault": name, "data-state": value }, value);
      b.addEventListener("click", () => bench("fault", { name, state: value }));
      group.append(b);
    }
    faults.append(group);
  }
}

// ------------------------------------------------------------------ access

async function loadSession() {
  const s = await api("/api/session");
  Object.assign(state, { csrf: s.csrf, loggedIn: s.logged_in, passwordSet: s.password_set,
                         bench: s.bench });
  $("#login-form").hidden = s.logged_in || !s.password_set;
  $("#logout-button").hidden = !s.logged_in;
  $("#access-state").textContent = s.logged_in ? "logged in" : s.password_set ? "read-only" : "read-only (no password set)";
  $("#bench-section").hidden = !s.bench;
  document.querySelectorAll("#bench-section button").forEach((b) => { b.disabled = !s.logged_in; });
  loadKeys();
}

async function login(event) {
  event.preventDefault();
  const answer = await api("/api/login", { password: $("#login-password").value });
  $("#login-password").value = "";
  if (!answer.ok) $("#access-state").textContent = answer.error;
  else await loadSession();
}

async function logout() {
  await api("/api/logout", {});
  await loadSession();
}

window.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout-button").addEventListener("click", logout);
  $("#keys-filter").addEventListener("input", filterKeys);
  $("#log-kind").addEventListener("change", loadLog);
  $("#log-filter").addEventListener("input", loadLog);
  $("#log-refresh").addEventListener("click", loadLog);
  $("#plot-connector").addEventListener("change", loadHistory);
  for (const [id, kind] of [["#plot-session", "session"], ["#plot-day", "day"]]) {
    $(id).addEventListener("click", () => {
      state.plot = kind;
      document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === $(id)));
      loadHistory();
    });
  }
  setupBench();
  loadSession();
  listen();
  loadHistory();
  loadLog();
  setInterval(loadHistory, 60000);
});
