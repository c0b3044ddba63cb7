// gridwatch command-center dashboard (一屏观全域). No build step: plain JS and vendored Leaflet.
// Every text that comes from the API is inserted with textContent, never as HTML.
"use strict";

const T = {
  zh: { title: "网格化治理 · 指挥中心", offline: "离线", live: "实时", sign_in: "登录", token_hint: "访问令牌",
        incidents: "事件", incident: "事件", state: "状态", level: "层级", sla: "时限", kpis: "指标",
        reports: "网格员上报", pick_unit: "点击网格查看指标", acknowledge: "签收", resolve: "办结",
        overdue: "超时", left: "剩余", none: "无", bad_token: "令牌无效或无权限",
        opened: "受理", acknowledged: "已签收", closed: "已结案", backlog: "积压", breaches: "超时次数",
        mtta_s: "平均签收(秒)", mttr_s: "平均办结(秒)", closure_rate: "办结率",
        dispatched: "已派遣", on_site: "已到场", resolved: "已办结", cancelled: "已撤销", merged: "已合并",
        grid_worker: "网格员", grid_leader: "网格长", community: "社区", town: "乡镇", district: "区县", city: "市",
        detail: "事件详情", comment: "批注", comment_hint: "批注内容", escalated: "升级", repeated: "再次呼叫",
        breach: "超时", unanswered_at_top: "顶层无人签收", arrive: "到场", verify: "核查结案", reopen: "重新派遣",
        cancel: "撤销", merge: "合并", assign: "指派", alert_added: "新告警", alert_resolved: "告警解除",
        severity_changed: "级别变化", fanned_out: "分派到网格", child_progress: "网格进展",
        kind: "类型", grid: "网格", deadline: "时限", assignee: "承办人" },
  en: { title: "Grid governance · command center", offline: "offline", live: "live", sign_in: "Sign in",
        token_hint: "access token", incidents: "Incidents", incident: "Incident", state: "State", level: "Level",
        sla: "SLA", kpis: "KPIs", reports: "Grid-worker reports", pick_unit: "Click a grid for its KPIs",
        acknowledge: "Acknowledge", resolve: "Resolve", overdue: "overdue", left: "left", none: "none",
        bad_token: "invalid token or not allowed", opened: "opened", acknowledged: "acknowledged",
        closed: "closed", backlog: "backlog", breaches: "breaches", mtta_s: "MTTA (s)", mttr_s: "MTTR (s)",
        closure_rate: "closure rate", dispatched: "dispatched", on_site: "on site", resolved: "resolved",
        cancelled: "cancelled", merged: "merged", grid_worker: "grid worker", grid_leader: "grid leader",
        community: "community", town: "town", district: "district", city: "city", detail: "Incident detail",
        comment: "Comment", comment_hint: "comment", escalated: "escalated", repeated: "called again",
        breach: "deadline missed", unanswered_at_top: "unanswered at the top", arrive: "arrived",
        verify: "verified and closed", reopen: "reopened", cancel: "cancelled", merge: "merged", assign: "assigned",
        alert_added: "alert added", alert_resolved: "alert resolved", severity_changed: "severity changed",
        fanned_out: "fanned out to grids", child_progress: "grid progress", kind: "kind", grid: "grid",
        deadline: "deadline", assignee: "assignee" },
};
const COLORS = { low: "#1e88e5", blue: "#1e88e5", medium: "#f9a825", yellow: "#f9a825", high: "#ef6c00",
                 orange: "#ef6c00", critical: "#c62828", red: "#c62828" };
const ACTIONS = { acknowledge: ["dispatched"], resolve: ["dispatched", "acknowledged", "on_site"] };
const S = { lang: sessionStorage.getItem("gw-lang") || "zh", token: sessionStorage.getItem("gw-token") || "",
            me: null, incidents: new Map(), status: {}, layer: null, map: null, clockSkew: 0, unit: null,
            detail: null };

const t = (k) => (T[S.lang][k] !== undefined ? T[S.lang][k] : k);
const $ = (sel) => document.querySelector(sel);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function applyLang() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
  $("#lang").textContent = S.lang === "zh" ? "EN" : "中文";
  $("#live").textContent = t($("#live").className === "on" ? "live" : "offline");
  renderIncidents();
  renderLegend();
  if (S.detail) showDetail(S.detail);
}

function showError(msg) { $("#error").textContent = msg || ""; }

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + S.token }, opts.headers || {});
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (!resp.ok) {
    let reason = resp.statusText;
    try { reason = (await resp.json()).error || reason; } catch (_) { /* not JSON */ }
    throw new Error(resp.status + ": " + reason);
  }
  return (resp.headers.get("Content-Type") || "").includes("json") ? resp.json() : resp.text();
}

function serverNow() { return Date.now() + S.clockSkew; }

function countdown(inc) {
  const due = inc.deadlines && (inc.deadlines.acknowledge || (["acknowledged", "on_site"].includes(inc.state) && inc.deadlines.resolve));
  if (!due) return ["", ""];
  const ms = Date.parse(due) - serverNow();
  const mins = Math.round(Math.abs(ms) / 60000);
  const text = mins >= 120 ? Math.round(mins / 60) + " h" : mins + " min";
  return ms < 0 ? [t("overdue") + " " + text, "overdue"] : [text + " " + t("left"), ""];
}

function renderIncidents() {
  const body = $("#incidents tbody");
  if (!body) return;
  body.replaceChildren();
  const rows = [...S.incidents.values()].sort((a, b) => (b.opened_at || "").localeCompare(a.opened_at || ""));
  for (const inc of rows.slice(0, 200)) {
    const tr = el("tr", null, "sev-" + inc.severity + (inc.incident_id === S.detail ? " selected" : ""));
    tr.dataset.incident = inc.incident_id;
    tr.addEventListener("click", (ev) => { if (!ev.target.closest("button")) showDetail(inc.incident_id); });
    const first = el("td");
    first.append(el("div", inc.grid_id), el("div", [inc.kind, inc.category, inc.severity].filter(Boolean).join(" · "), "kind"));
    const [sla, cls] = countdown(inc);
    const state = el("td", t(inc.state), "state");
    tr.append(first, state, el("td", t(inc.level)), el("td", sla, cls));
    const acts = el("td");
    if (S.me && S.me.may_act) {
      for (const [action, states] of Object.entries(ACTIONS)) {
        if (!states.includes(inc.state)) continue;
        const b = el("button", t(action), "act-" + action);
        b.type = "button";
        b.addEventListener("click", () => act(inc.incident_id, action, b));
        acts.append(b);
      }
    }
    tr.append(acts);
    body.append(tr);
  }
}

async function act(id, action, button) {
  button.disabled = true;
  try {
    const body = { action };
    if (action === "resolve") body.reason = "handled on site (dashboard)";
    await api("/api/v1/incidents/" + encodeURIComponent(id) + "/commands",
              { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    showError("");
  } catch (e) { showError(String(e.message)); button.disabled = false; }
}

async function showDetail(id) {
  S.detail = id;
  document.querySelectorAll("#incidents tbody tr").forEach((r) => r.classList.toggle("selected", r.dataset.incident === id));
  let d;
  try { d = await api("/api/v1/incidents/" + encodeURIComponent(id)); } catch (e) { showError(e.message); return; }
  if (S.detail !== id) return;  // another was picked meanwhile
  const inc = d.incident;
  $("#detail").hidden = false;
  const head = $("#detail-head");
  head.replaceChildren();
  const rows = [["incident", inc.incident_id], ["kind", [inc.kind, inc.category, inc.severity].filter(Boolean).join(" · ")],
                ["grid", (inc.path || []).join(" › ")], ["state", t(inc.state)], ["level", t(inc.level) + " (" + inc.unit + ")"],
                ["opened", inc.opened_at], ["deadline", (inc.deadlines || {}).acknowledge || (inc.deadlines || {}).resolve],
                ["assignee", inc.assignee]];
  for (const [k, v] of rows) head.append(el("dt", t(k)), el("dd", v === null || v === undefined ? "–" : v));
  const list = $("#timeline");
  list.replaceChildren();
  for (const e of d.escalations) {
    const li = el("li");
    li.dataset.transition = e.transition;
    li.append(el("div", [e.at, t(e.level), (e.to || []).join(", "), e.actor].filter(Boolean).join(" · "), "meta"),
              el("div", t(e.transition) + (e.reason ? ": " + e.reason : ""), "what"));
    list.append(li);
  }
  $("#comment").hidden = !(S.me && S.me.may_act);
}

async function postComment(ev) {
  ev.preventDefault();
  const text = $("#comment-text").value.trim();
  if (!text || !S.detail) return;
  try {
    await api("/api/v1/incidents/" + encodeURIComponent(S.detail) + "/commands",
              { method: "POST", body: JSON.stringify({ action: "comment", reason: text }),
                headers: { "Content-Type": "application/json" } });
    $("#comment-text").value = "";
    showError("");
  } catch (e) { showError(String(e.message)); }
}

function renderLegend() {
  const lg = $("#legend");
  lg.replaceChildren(el("b", t("incidents")));
  for (const [name, color] of [["critical", COLORS.critical], ["high", COLORS.high], ["medium", COLORS.medium], ["low", COLORS.low]]) {
    const sw = el("span"); sw.style.background = color; lg.append(sw, el("i", name));
  }
}

function gridStyle(feature) {
  const st = S.status[feature.properties.grid_id];
  return { color: "#334", weight: 1, fillOpacity: st ? 0.6 : 0.15, fillColor: st ? (COLORS[st.severity] || "#888") : "#9aa" };
}

async function loadGrids() {
  const zoom = S.map.getZoom() || 12;
  const fc = await api("/api/v1/grids?zoom=" + Math.max(0, Math.min(20, Math.round(zoom))));
  if (S.layer) S.layer.remove();
  S.layer = L.geoJSON(fc, { style: gridStyle, onEachFeature: (f, layer) => {
    layer.on("click", () => showUnit(f.properties));
    layer.bindTooltip(() => { const d = el("div"); d.textContent = f.properties.name + " " + f.properties.grid_id; return d; });
  } }).addTo(S.map);
  const b = S.layer.getBounds();
  if (b.isValid() && !S.fitted) { S.map.fitBounds(b); S.fitted = true; }
  document.body.dataset.grids = String(fc.features.length);
}

async function refreshStatus() {
  S.status = await api("/api/v1/grid-status");
  if (S.layer) S.layer.setStyle(gridStyle);
}

async function showUnit(props) {
  S.unit = props;
  const box = $("#kpis");
  box.replaceChildren(el("p", props.name + " (" + props.grid_id + ")"));
  const units = [...props.path].reverse();
  const data = await api("/api/v1/kpis");
  for (const u of units) {
    const k = data.kpis[u];
    if (!k) continue;
    const dl = el("dl", null, "kpi");
    dl.append(el("dt", "unit"), el("dd", u));
    for (const f of ["opened", "acknowledged", "closed", "backlog", "breaches", "mtta_s", "mttr_s", "closure_rate"]) {
      let v = k[f];
      if (f === "closure_rate" && v !== null) v = (v * 100).toFixed(1) + " %";
      dl.append(el("dt", t(f)), el("dd", v === null || v === undefined ? "–" : v));
    }
    box.append(dl);
  }
}

function addReport(r, top) {
  const li = el("li");
  li.append(el("div", (r.observed_at || "") + " · " + (r.grid_id || "") + " · " + (r.category || ""), "meta"),
            el("div", r.text, "text"));
  li.dataset.report = r.report_id || "";
  const list = $("#reports");
  if (top) list.prepend(li); else list.append(li);
  while (list.children.length > 100) list.lastChild.remove();
}

async function stream() {
  // fetch, not EventSource: the token goes in a header, never in a URL
  for (;;) {
    try {
      const resp = await fetch("/api/v1/stream", { headers: { Authorization: "Bearer " + S.token } });
      if (!resp.ok) throw new Error("stream " + resp.status);
      $("#live").className = "on"; $("#live").textContent = t("live");
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          let name = "message", data = "";
          for (const line of chunk.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch (e) { showError(String(e.message)); }
    $("#live").className = "off"; $("#live").textContent = t("offline");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

let statusTimer = null, detailTimer = null;
function onEvent(name, data) {
  if (name === "escalation" && data.incident_id === S.detail) {
    clearTimeout(detailTimer); detailTimer = setTimeout(() => showDetail(S.detail), 150);
  }
  if (name === "incident") {
    S.incidents.set(data.incident_id, data);
    renderIncidents();
    clearTimeout(statusTimer); statusTimer = setTimeout(refreshStatus, 200);
  } else if (name === "incident_removed") {  // ended long ago: the worker forgot it
    S.incidents.delete(data.incident_id);
    renderIncidents();
  } else if (name === "report") {
    addReport(data, true);
  } else if (name === "kpi" && S.unit && S.unit.path.includes(data.unit)) {
    showUnit(S.unit);
  }
}

async function start() {
  try {
    S.me = await api("/api/v1/me");
  } catch (e) { showError(t("bad_token") + " (" + e.message + ")"); return; }
  S.clockSkew = (S.me.now || Date.now()) - Date.now();
  $("#who").textContent = S.me.name + " · " + S.me.role + (S.me.scope ? " · " + S.me.scope : "");
  $("#login").hidden = true;
  S.map = L.map("map", { zoomControl: true, attributionControl: false }).setView([34.1, 112.1], 10);
  S.map.on("zoomend", () => loadGrids().catch((e) => showError(e.message)));
  await Promise.all([loadGrids(), refreshStatus()]);
  const list = await api("/api/v1/incidents?limit=200");
  for (const inc of list.incidents) S.incidents.set(inc.incident_id, inc);
  renderIncidents();
  const reps = await api("/api/v1/reports");
  for (const r of reps.reports) addReport(r, false);
  stream();
  setInterval(renderIncidents, 30000);  // countdowns
  document.body.dataset.ready = "true";
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  S.token = $("#token").value.trim();
  sessionStorage.setItem("gw-token", S.token);
  start();
});
$("#comment").addEventListener("submit", postComment);
$("#lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh";
  sessionStorage.setItem("gw-lang", S.lang);
  applyLang();
});
applyLang();
if (S.token) start();
