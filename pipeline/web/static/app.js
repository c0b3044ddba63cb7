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
        kind: "类型", grid: "网格", deadline: "时限", assignee: "承办人", open_tab: "处置中", ended_tab: "已结束",
        more: "更多", open_now: "在办", overdue_now: "已超时", acked_in_time_today: "今日按时签收",
        towns: "乡镇边界", villages: "村(社区)边界", hazards: "隐患区(当前等级)", points: "监测点", police: "警格",
        ok: "正常", stale: "数据中断", offline: "离线", layers: "图层", critical_l: "特别严重", high_l: "严重",
        medium_l: "较重", low_l: "一般", search_hint: "按名称或编码查找",
        inactivity: "独居老人无活动", landslide: "地质灾害", device_offline: "设备离线", sensor_stale: "监测中断",
        report_cluster: "网格上报", low: "一般", medium: "较重", high: "严重", critical: "特别严重",
        blue: "蓝色", yellow: "黄色", orange: "橙色", red: "红色", public_facilities: "公共设施",
        roads_traffic: "道路交通", city_appearance: "市容环境", street_order: "街面秩序",
        safety_hazard: "安全隐患", dispute: "矛盾纠纷", fraud_risk: "涉诈风险", emergency: "突发事件" },
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
        deadline: "deadline", assignee: "assignee", open_tab: "Open", ended_tab: "Ended", more: "more",
        open_now: "open", overdue_now: "overdue now", acked_in_time_today: "acknowledged in time today",
        towns: "town boundaries", villages: "village boundaries", hazards: "hazard zones (current level)",
        points: "monitoring points", police: "police grids", ok: "ok", stale: "stale", offline: "offline",
        layers: "Layers", critical_l: "critical", high_l: "high", medium_l: "medium", low_l: "low",
        search_hint: "find by name or code" },
};
const COLORS = { low: "#1e88e5", blue: "#1e88e5", medium: "#f9a825", yellow: "#f9a825", high: "#ef6c00",
                 orange: "#ef6c00", critical: "#c62828", red: "#c62828" };
const ACTIONS = { acknowledge: ["dispatched"], resolve: ["dispatched", "acknowledged", "on_site"] };
const PAGE = 100;  // rows drawn at once; "more" draws the next page
const S = { lang: sessionStorage.getItem("gw-lang") || "zh", token: sessionStorage.getItem("gw-token") || "",
            me: null, incidents: new Map(), status: {}, layer: null, map: null, clockSkew: 0, unit: null,
            detail: null, names: {}, tab: "open", shown: PAGE, layers: new Map(), colors: new Map(),
            kpis: {}, overlays: new Map() };
// ?render=legacy: round 1's rendering (the whole table rebuilt on every stream event), kept so
// `gridwatch bench dashboard` can measure the difference in the same run
const LEGACY = new URLSearchParams(location.search).get("render") === "legacy";
const OPEN = ["dispatched", "acknowledged", "on_site"];
let frame = 0;
/** Apply-then-render: stream events only change state; the page is drawn at most once a frame. */
function schedule() {
  if (LEGACY) { renderIncidents(); return; }
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderIncidents(); renderHeader(); });
}

const t = (k) => (T[S.lang][k] !== undefined ? T[S.lang][k] : k);
const nameOf = (code) => S.names[code] || code;
/** 镇 › 村 › 网格 by name (the county left out); codes on hover. */
function place(path) {
  const p = (path || []).slice(path && path.length > 1 ? 1 : 0);
  return p.map(nameOf).join(" › ");
}
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
  renderHeader();
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
  const due = dueOf(inc);
  if (due === Infinity) return ["", ""];
  const ms = due - serverNow();
  const mins = Math.round(Math.abs(ms) / 60000);
  const text = mins >= 120 ? Math.round(mins / 60) + " h" : mins + " min";
  return ms < 0 ? [t("overdue") + " " + text, "overdue"] : [text + " " + t("left"), ""];
}

function dueOf(inc) {
  const d = inc.deadlines || {};
  const due = d.acknowledge || (["acknowledged", "on_site"].includes(inc.state) && d.resolve);
  return due ? Date.parse(due) : Infinity;
}
function endedAt(inc) { return inc.closed_at || inc.resolved_at || inc.acknowledged_at || inc.opened_at || ""; }

function row(inc) {  // no listeners here: one delegated listener on the table body
  const tr = el("tr", null, "sev-" + inc.severity + (inc.incident_id === S.detail ? " selected" : ""));
  tr.dataset.incident = inc.incident_id;
  const first = el("td");
  const where = el("div", place(inc.path) || inc.grid_id, "where");
  where.title = (inc.path || []).join(" › ");
  first.append(where, el("div", [inc.kind, inc.category, inc.severity].filter(Boolean).map(t).join(" · "), "kind"));
  const [sla, cls] = countdown(inc);
  tr.append(first, el("td", t(inc.state), "state"), el("td", t(inc.level)), el("td", sla, cls));
  const acts = el("td");
  if (S.me && S.me.may_act) {
    for (const [action, states] of Object.entries(ACTIONS)) {
      if (!states.includes(inc.state)) continue;
      const b = el("button", t(action), "act-" + action);
      b.type = "button";
      b.dataset.action = action;
      acts.append(b);
    }
  }
  tr.append(acts);
  return tr;
}

function renderIncidents() {
  if (LEGACY) { renderIncidentsLegacy(); return; }
  const body = $("#incidents tbody");
  if (!body) return;
  const q = (S.query || "").trim().toLowerCase();
  const all = [...S.incidents.values()].filter((i) => !q || matches(i, q));
  const open = all.filter((i) => OPEN.includes(i.state)).sort((a, b) => dueOf(a) - dueOf(b));
  const ended = all.filter((i) => !OPEN.includes(i.state)).sort((a, b) => endedAt(b).localeCompare(endedAt(a)));
  const rows = S.tab === "open" ? open : ended;
  $("#tab-open").textContent = t("open_tab") + " (" + open.length + ")";
  $("#tab-ended").textContent = t("ended_tab") + " (" + ended.length + ")";
  $("#tab-open").classList.toggle("on", S.tab === "open");
  $("#tab-ended").classList.toggle("on", S.tab === "ended");
  const frag = document.createDocumentFragment();
  for (const inc of rows.slice(0, S.shown)) frag.append(row(inc));
  body.replaceChildren(frag);
  $("#more").hidden = rows.length <= S.shown;
}

/** Search by name or code: any unit on the incident's path, its id, kind or category. */
function matches(inc, q) {
  const words = [inc.incident_id, inc.kind, inc.category, ...(inc.path || []), ...(inc.path || []).map(nameOf)];
  return words.some((w) => w && String(w).toLowerCase().includes(q));
}

function onTableClick(ev) {
  const tr = ev.target.closest("tr");
  if (!tr || !tr.dataset.incident) return;
  const b = ev.target.closest("button[data-action]");
  if (b) act(tr.dataset.incident, b.dataset.action, b);
  else showDetail(tr.dataset.incident);
}

/** 一屏观全域: the county's (or the caller's unit's) figures at a glance, live. */
function renderHeader() {
  const box = $("#header-kpis");
  if (!box) return;
  const open = [...S.incidents.values()].filter((i) => OPEN.includes(i.state));
  const now = serverNow();
  const byLevel = {};
  for (const i of open) byLevel[i.level] = (byLevel[i.level] || 0) + 1;
  const today = new Date(now + 8 * 3600e3).toISOString().slice(0, 10);  // China Standard Time
  const ackedToday = [...S.incidents.values()].filter((i) => i.acknowledged_at &&
    new Date(Date.parse(i.acknowledged_at) + 8 * 3600e3).toISOString().slice(0, 10) === today);
  const inTime = ackedToday.filter((i) => !(i.breaches || []).includes("acknowledge")).length;
  const unit = (S.me && S.me.scope) || Object.keys(S.kpis).find((u) => u.length === 6) || Object.keys(S.kpis)[0];
  const k = S.kpis[unit] || {};
  const items = [["open_now", open.length], ["overdue_now", open.filter((i) => dueOf(i) < now).length],
                 ...["grid_worker", "grid_leader", "community", "town", "district"].map((l) => [l, byLevel[l] || 0]),
                 ["acked_in_time_today", inTime + " / " + ackedToday.length],
                 ["closure_rate", k.closure_rate == null ? "–" : (k.closure_rate * 100).toFixed(1) + " %"],
                 ["mtta_s", k.mtta_s == null ? "–" : Math.round(k.mtta_s)],
                 ["mttr_s", k.mttr_s == null ? "–" : Math.round(k.mttr_s)]];
  const frag = document.createDocumentFragment();
  for (const [key, value] of items) {
    const d = el("div", null, "kpi-" + key);
    d.append(el("b", value), el("span", t(key)));
    frag.append(d);
  }
  box.replaceChildren(frag);
  box.title = unit ? nameOf(unit) + " (" + unit + ")" : "";
}

function renderIncidentsLegacy() {
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
                ["grid", place(inc.path)], ["state", t(inc.state)], ["level", t(inc.level) + " (" + nameOf(inc.unit) + ")"],
                ["opened", inc.opened_at], ["deadline", (inc.deadlines || {}).acknowledge || (inc.deadlines || {}).resolve],
                ["assignee", inc.assignee]];
  for (const [k, v] of rows) head.append(el("dt", t(k)), el("dd", v === null || v === undefined ? "–" : v));
  const list = $("#timeline");
  list.replaceChildren();
  const byTime = [...d.escalations].sort((a, b) => (a.at || "").localeCompare(b.at || "") || (a.step - b.step));
  for (const e of byTime) {
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
    const sw = el("span"); sw.style.background = color; lg.append(sw, el("i", t(name + "_l")));
  }
  lg.append(el("b", t("layers")));
  for (const kind of LAYER_KINDS) {
    const label = el("label", null, "layer-toggle");
    const box = el("input");
    box.type = "checkbox"; box.dataset.layer = kind; box.checked = S.overlays.has(kind);
    box.addEventListener("change", () => toggleLayer(kind, box.checked));
    label.append(box, el("span", t(kind)));
    lg.append(label);
  }
}

const LAYER_KINDS = ["towns", "villages", "hazards", "points", "police"];
const POINT_COLORS = { ok: "#2e7d32", stale: "#f9a825", offline: "#c62828" };
function layerStyle(kind) {
  return (f) => {
    const p = f.properties;
    if (kind === "hazards") return { color: COLORS[p.level] || "#777", weight: 2, fillOpacity: p.level === "none" ? 0.05 : 0.35, fillColor: COLORS[p.level] || "#777" };
    if (kind === "police") return { color: "#5c6bc0", weight: 1, dashArray: "4 4", fillOpacity: 0 };
    return { color: kind === "towns" ? "#111" : "#555", weight: kind === "towns" ? 3 : 1.5, fillOpacity: 0 };
  };
}
async function toggleLayer(kind, on) {
  if (!S.map) return;
  const old = S.overlays.get(kind);
  if (old) old.remove();
  S.overlays.delete(kind);
  if (!on) return;
  const zoom = Math.max(0, Math.min(20, Math.round(S.map.getZoom() || 12)));
  const fc = await api("/api/v1/layers/" + kind + "?zoom=" + zoom);
  const layer = L.geoJSON(fc, { style: layerStyle(kind), interactive: kind !== "towns" && kind !== "villages",
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 5, weight: 1, color: "#222",
      fillColor: POINT_COLORS[f.properties.state] || "#777", fillOpacity: 0.9, className: "point-" + f.properties.state }),
    onEachFeature: (f, lyr) => lyr.bindTooltip(() => {
      const p = f.properties;
      return el("div", [p.name || p.id, p.id, p.level ? t(p.level === "none" ? "none" : p.level) : "", p.state ? t(p.state) : ""].filter(Boolean).join(" · "));
    }) }).addTo(S.map);
  layer.getLayers().forEach((l) => { if (l.getElement) { const e = l.getElement(); if (e) e.dataset.layer = kind; } });
  S.overlays.set(kind, layer);
  document.body.dataset["layer_" + kind] = String(fc.features.length);
}
function refreshOverlays() {
  for (const kind of ["hazards", "points"]) if (S.overlays.has(kind)) toggleLayer(kind, true).catch(() => {});
}

function gridStyle(feature) {
  const st = S.status[feature.properties.grid_id];
  return { color: "#334", weight: 1, fillOpacity: st ? 0.6 : 0.15, fillColor: st ? (COLORS[st.severity] || "#888") : "#9aa" };
}

async function loadGrids() {
  const zoom = S.map.getZoom() || 12;
  const fc = await api("/api/v1/grids?zoom=" + Math.max(0, Math.min(20, Math.round(zoom))));
  if (S.layer) S.layer.remove();
  S.layers = new Map();
  S.colors = new Map();
  S.layer = L.geoJSON(fc, { style: gridStyle, onEachFeature: (f, layer) => {
    S.layers.set(f.properties.grid_id, layer);
    S.colors.set(f.properties.grid_id, gridStyle(f).fillColor + gridStyle(f).fillOpacity);
    layer.on("click", () => showUnit(f.properties));
    layer.bindTooltip(() => { const d = el("div"); d.textContent = f.properties.name + " " + f.properties.grid_id; return d; });
  } }).addTo(S.map);
  const b = S.layer.getBounds();
  if (b.isValid() && !S.fitted) { S.map.fitBounds(b); S.fitted = true; }
  document.body.dataset.grids = String(fc.features.length);
}

async function refreshStatus() {
  S.status = await api("/api/v1/grid-status");
  if (!S.layer) return;
  if (LEGACY) { S.layer.setStyle(gridStyle); return; }
  for (const [id, layer] of S.layers) {  // only the grids whose colour changed
    const style = gridStyle(layer.feature);
    const key = style.fillColor + style.fillOpacity;
    if (S.colors.get(id) !== key) { layer.setStyle(style); S.colors.set(id, key); }
  }
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
    schedule();
    if (LEGACY) { clearTimeout(statusTimer); statusTimer = setTimeout(refreshStatus, 200); }
    else if (!statusTimer) statusTimer = setTimeout(() => { statusTimer = null; refreshStatus().catch(() => {}); refreshOverlays(); }, 500);
  } else if (name === "incident_removed") {  // ended long ago: the worker forgot it
    S.incidents.delete(data.incident_id);
    schedule();
  } else if (name === "report") {
    addReport(data, true);
  } else if (name === "kpi") {
    S.kpis[data.unit] = data;
    schedule();
    if (S.unit && S.unit.path.includes(data.unit)) showUnit(S.unit);
  }
}

async function start() {
  try {
    S.me = await api("/api/v1/me");
  } catch (e) { showError(t("bad_token") + " (" + e.message + ")"); return; }
  S.clockSkew = (S.me.now || Date.now()) - Date.now();
  $("#who").textContent = S.me.name + " · " + S.me.role + (S.me.scope ? " · " + S.me.scope : "");
  $("#login").hidden = true;
  try { S.names = (await api("/api/v1/names")).names || {}; } catch (_) { S.names = {}; }
  try { S.kpis = (await api("/api/v1/kpis")).kpis || {}; } catch (_) { S.kpis = {}; }
  if (!LEGACY) $("#incidents tbody").addEventListener("click", onTableClick);
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => { S.tab = b.dataset.tab; S.shown = PAGE; schedule(); });
  }
  $("#more").addEventListener("click", () => { S.shown += PAGE; schedule(); });
  $("#search").addEventListener("input", () => { S.query = $("#search").value; S.shown = PAGE; schedule(); });
  S.map = L.map("map", { zoomControl: true, attributionControl: false }).setView([34.1, 112.1], 10);
  S.map.on("zoomend", () => loadGrids().catch((e) => showError(e.message)));
  await Promise.all([loadGrids(), refreshStatus()]);
  const list = await api("/api/v1/incidents?limit=5000");
  for (const inc of list.incidents) S.incidents.set(inc.incident_id, inc);
  renderIncidents();
  renderHeader();
  const reps = await api("/api/v1/reports");
  for (const r of reps.reports) addReport(r, false);
  stream();
  setInterval(schedule, 30000);  // countdowns
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
