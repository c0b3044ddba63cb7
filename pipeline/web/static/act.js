// The phone page behind an action link: reads the incident with the link, acts with the link.
// Chinese first, an English switch; every text from the server is shown as text, never HTML.
"use strict";

const TEXT = {
  zh: {loading: "加载中…", deadline: "确认时限", evidence: "依据", ladder: "处置经过", acknowledge: "签收",
       arrive: "到场", resolve: "办结", comment: "批注", reason_hint: "办结说明 / 批注", lang: "EN",
       overdue: "已超时", done: "已提交:", need_reason: "请填写说明", sent: "已记录,指挥中心已收到",
       kinds: {inactivity: "独居老人无活动", landslide: "地质灾害预警", device_offline: "设备离线",
               sensor_stale: "监测设备数据中断", report_cluster: "网格上报事件"},
       states: {dispatched: "待签收", acknowledged: "已签收", on_site: "已到场", resolved: "已办结",
                closed: "已结案", cancelled: "已撤销", merged: "已合并"},
       levels: {grid_worker: "网格员", grid_leader: "网格长", community: "村(社区)", town: "镇(街道)",
                district: "县(区)", city: "市"},
       severities: {low: "一般", medium: "较重", high: "严重", critical: "特别严重", blue: "蓝色",
                    yellow: "黄色", orange: "橙色", red: "红色"},
       transitions: {opened: "立案", dispatched: "派单", repeated: "再次呼叫", escalated: "升级",
                     unanswered_at_top: "最高层级无人响应", breach: "超时", acknowledge: "签收",
                     arrive: "到场", resolve: "办结", verify: "核查结案", reopen: "重新派单",
                     cancel: "撤销", comment: "批注", assign: "指派", merge: "合并"}},
  en: {loading: "Loading…", deadline: "Acknowledge by", evidence: "Evidence", ladder: "So far",
       acknowledge: "Acknowledge", arrive: "On site", resolve: "Resolve", comment: "Comment",
       reason_hint: "What was done / a comment", lang: "中文", overdue: "overdue", done: "Sent:",
       need_reason: "Please write a few words", sent: "Recorded; the command center has it",
       kinds: {inactivity: "Resident inactive", landslide: "Landslide warning", device_offline: "Device offline",
               sensor_stale: "Sensor silent", report_cluster: "Grid reports"},
       states: {dispatched: "waiting", acknowledged: "acknowledged", on_site: "on site", resolved: "resolved",
                closed: "closed", cancelled: "cancelled", merged: "merged"},
       levels: {grid_worker: "grid worker", grid_leader: "grid leader", community: "village", town: "town",
                district: "county", city: "city"},
       severities: {}, transitions: {}},
};
let lang = "zh";  // Chinese first; the EN button switches
let data = null;
const token = decodeURIComponent(location.pathname.split("/").pop());
const $ = (id) => document.getElementById(id);
const t = (k) => TEXT[lang][k] || k;

function setText(el, s) { el.textContent = s == null ? "" : String(s); }

function localTime(iso) {
  if (!iso) return "—";
  const d = new Date(Date.parse(iso) + 8 * 3600 * 1000);  // China Standard Time, UTC+8
  return d.toISOString().slice(5, 16).replace("T", " ");
}

function drawMap(outline) {
  const svg = $("map");
  svg.replaceChildren();
  const pts = outline.flat();
  if (!pts.length) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), y1 = Math.max(...ys);
  const span = Math.max(Math.max(...xs) - x0, y1 - Math.min(...ys)) || 1;
  for (const ring of outline) {
    const poly = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    poly.setAttribute("points", ring.map(([x, y]) =>
      `${(5 + 90 * (x - x0) / span).toFixed(2)},${(5 + 90 * (y1 - y) / span).toFixed(2)}`).join(" "));
    svg.appendChild(poly);
  }
}

function render() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => setText(el, t(el.dataset.i18n)));
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  setText($("lang"), t("lang"));
  if (!data) return;
  const inc = data.incident;
  const sev = TEXT[lang].severities[inc.severity] || inc.severity || "";
  setText($("what"), (TEXT[lang].kinds[inc.kind] || inc.kind) + " · " + sev);
  setText($("where"), data.where.slice(1).map((w) => w.name).join(" › "));
  $("where").title = data.where.map((w) => w.code).join(" › ");
  setText($("severity"), sev);
  setText($("state"), TEXT[lang].states[inc.state] || inc.state);
  setText($("level"), TEXT[lang].levels[inc.level] || inc.level);
  const ev = $("evidence");
  ev.replaceChildren();
  for (const [k, v] of Object.entries(inc.to_check || {}).concat([["opened_at", localTime(inc.opened_at)],
                                                                  ["rule", inc.rule]])) {
    if (v == null || (Array.isArray(v) && !v.length)) continue;
    const li = document.createElement("li");
    setText(li, `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    ev.appendChild(li);
  }
  const tl = $("timeline");
  tl.replaceChildren();
  for (const e of data.timeline) {
    const li = document.createElement("li");
    li.dataset.transition = e.transition;
    const what = TEXT[lang].transitions[e.transition] || e.transition;
    setText(li, `${localTime(e.at)} ${what} → ${TEXT[lang].levels[e.level] || e.level}` +
                (e.actor ? ` (${e.actor})` : "") + (e.count > 1 ? ` ×${e.count}` : ""));
    tl.appendChild(li);
  }
  for (const b of document.querySelectorAll("#actions button")) {
    b.disabled = !data.may.includes(b.dataset.action);
  }
  drawMap(data.outline);
  tick();
}

function tick() {
  if (!data) return;
  const due = data.incident.deadlines && data.incident.deadlines.acknowledge;
  const el = $("countdown");
  if (!due) { setText(el, "—"); return; }
  const left = Math.round((Date.parse(due) - Date.now()) / 60000);
  el.classList.toggle("overdue", left < 0);
  setText(el, `${localTime(due)} (${left < 0 ? t("overdue") + " " + -left : left} min)`);
}

function fail(message) {
  const el = $("error");
  setText(el, message);
  el.hidden = false;
  $("card").hidden = $("actions").hidden = true;
  document.body.dataset.ready = "true";
}

async function load() {
  const r = await fetch(`/api/v1/act/${encodeURIComponent(token)}`, {cache: "no-store"});
  const body = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) { fail(body.error || r.statusText); return; }
  data = body;
  $("card").hidden = $("actions").hidden = false;
  render();
  document.body.dataset.ready = "true";
}

async function act(action) {
  const reason = $("reason").value.trim();
  if ((action === "resolve" || action === "comment") && !reason) { setText($("done"), t("need_reason")); $("done").hidden = false; return; }
  const r = await fetch(`/api/v1/act/${encodeURIComponent(token)}`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(reason ? {action, reason} : {action})});
  const body = await r.json().catch(() => ({}));
  const done = $("done");
  done.hidden = false;
  if (r.status === 202) {
    setText(done, `${t("done")} ${t(action)} · ${t("sent")}`);
    done.dataset.action = action;
    data.may = data.may.filter((a) => a !== action);
    render();
  } else {
    setText(done, body.error || r.statusText);
    done.dataset.action = "";
  }
}

$("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; render(); });
document.querySelectorAll("#actions button").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
setInterval(tick, 30_000);
load().catch((e) => fail(String(e)));
