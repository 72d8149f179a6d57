/* The command console: plain JavaScript, no build step, nothing fetched from outside
   the API. Live updates come from /v1/events, read with fetch() so that the bearer
   token travels in a header (EventSource cannot send one). */
"use strict";

const I18N = {
  zh: {
    title: "塘厦义警 指挥台", board: "警情看板", new: "新建警情", audit: "操作审计",
    offline: "离线", online: "实时", logout: "退出", token: "令牌", signin: "登录",
    type: "类型", priority: "优先级", lat: "纬度", lon: "经度", address: "地址",
    description: "描述", raise: "发布警情", clickmap: "在地图上点击选择位置",
    grid: "1+10 响应", timeline: "时间线", reasons: "决策理由", actor: "操作人",
    incident: "警情", filter: "筛选", time: "时间", kind: "类别", action: "动作",
    result: "结果", detail: "详情", stage: "第{0}级", zone: "先莞队", quorum: "法定响应", need: "需",
    met: "已满足", notmet: "未满足", deadline: "确认时限", none: "暂无进行中的警情",
    escalate: "升级", repage: "重新呼叫", reassign: "改派", note: "备注", change: "改优先级",
    move: "更正位置", cancel: "撤销", close: "结案", reopen: "重开", send: "提交",
    reason: "理由", zone_id: "先莞队编号", confirm_move: "点击地图选择新位置后提交",
    applied: "已执行", refused: "被拒绝", raised_ok: "警情已发布", units: "队员/单位",
    badtoken: "令牌无效", forbidden: "权限不足", called: "已呼叫", delivered: "已送达",
    fire: "火情", medical: "急救", fight: "打架", theft: "盗窃", traffic: "交通事故",
    missing_person: "寻人", suspicious: "可疑情况", fraud: "诈骗", flood: "水浸",
    school_gate: "校门警情", other: "其他",
    raised: "已发布", dispatched: "已派警", acknowledged: "已响应", on_scene: "已到场",
    closed: "已结案", escalated: "已升级", unanswered: "无人响应", cancelled: "已撤销",
    paged: "已呼叫", sent: "已发出", failed: "未送达", accepted: "接警", declined: "拒绝",
  },
  en: {
    title: "Tangxia volunteer police console", board: "Board", new: "New incident",
    audit: "Audit", offline: "offline", online: "live", logout: "Sign out", token: "Token",
    signin: "Sign in", type: "Type", priority: "Priority", lat: "Latitude", lon: "Longitude",
    address: "Address", description: "Description", raise: "Raise incident",
    clickmap: "click the map to set the location", grid: "1+10 response",
    timeline: "Timeline", reasons: "Decision reasons", actor: "Actor", incident: "Incident",
    filter: "Filter", time: "Time", kind: "Kind", action: "Action", result: "Result",
    detail: "Detail", stage: "stage {0}", zone: "zone", quorum: "quorum", need: "need", met: "met",
    notmet: "not met", deadline: "ack deadline", none: "No open incidents",
    escalate: "Escalate", repage: "Page again", reassign: "Reassign", note: "Note",
    change: "Priority", move: "Move", cancel: "Cancel", close: "Close", reopen: "Reopen",
    send: "Send", reason: "Reason", zone_id: "Zone id",
    confirm_move: "click the map for the new location, then send",
    applied: "applied", refused: "refused", raised_ok: "incident raised", units: "units",
    badtoken: "invalid token", forbidden: "not allowed for this role", called: "called",
    delivered: "delivered",
    fire: "fire", medical: "medical", fight: "fight", theft: "theft", traffic: "traffic",
    missing_person: "missing person", suspicious: "suspicious", fraud: "fraud",
    flood: "flood", school_gate: "school gate", other: "other",
    raised: "raised", dispatched: "dispatched", acknowledged: "acknowledged",
    on_scene: "on scene", closed: "closed", escalated: "escalated",
    unanswered: "unanswered", cancelled: "cancelled", paged: "paged", sent: "sent",
    failed: "not delivered", accepted: "accepted",
    declined: "declined",
  },
};
const TYPES = ["fire", "medical", "fight", "theft", "traffic", "missing_person",
  "suspicious", "fraud", "flood", "school_gate", "other"];
const COMMANDS = [
  ["escalate", []], ["repage", []], ["reassign", ["zone_id", "reason"]], ["note", ["reason"]],
  ["change", ["priority", "reason"]], ["move", ["lat", "lon", "reason"]],
  ["close", ["reason"]], ["cancel", ["reason"]], ["reopen", ["reason"]],
];

const S = {
  lang: localStorage.getItem("lang") || "zh",
  token: sessionStorage.getItem("token") || "",
  incidents: new Map(),   // id -> summary
  details: new Map(),     // id -> detail (fetched for the board's grids)
  current: null,          // incident page id
  layers: null,           // GeoJSON of the registry
  maps: {},
  audit: [],
  live: false,            // following /v1/events now
};
const $ = (sel) => document.querySelector(sel);
const t = (key, ...args) => {
  let s = (I18N[S.lang][key] ?? key);
  args.forEach((a, i) => { s = s.replace(`{${i}}`, a); });
  return s;
};
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const hhmmss = (iso) => iso ? new Date(iso).toLocaleTimeString("zh-CN", { hour12: false }) : "";

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${S.token}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) { signOut(t("badtoken")); throw new Error("401"); }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  return { status: r.status, body };
}
const detailText = (body) => typeof body?.detail === "string" ? body.detail
  : Array.isArray(body?.detail) ? body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ")
  : JSON.stringify(body);

/* --- language ------------------------------------------------------------------------ */
function applyLang() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#lang").textContent = S.lang === "zh" ? "EN" : "中文";
  $("#f-type").innerHTML = TYPES.map((k) => `<option value="${k}">${esc(t(k))}</option>`).join("");
  live(Boolean(S.live));  // its label is translated, its state kept
  render();
}

/* --- maps ---------------------------------------------------------------------------- */
function makeMap(id) {
  if (S.maps[id]) return S.maps[id];
  const map = L.map(id, { zoomControl: true, attributionControl: false, preferCanvas: true });
  const bounds = S.layers ? drawRegistry(map) : null;
  // a view at once: Leaflet ignores size changes (and clicks) of a map without one
  map.setView(bounds ? bounds.getCenter() : [22.81, 114.09], 13);
  const overlay = L.layerGroup().addTo(map);
  S.maps[id] = { map, overlay, bounds, fitted: false };
  fitWhenShown(S.maps[id]);
  return S.maps[id];
}
function fitWhenShown(m) {
  // A map made in a hidden view has no size: it is fitted once it is shown.
  m.map.invalidateSize();
  if (!m.fitted && m.map.getSize().x > 0) {
    m.map.fitBounds(m.bounds || L.latLngBounds([[22.76, 114.03], [22.85, 114.14]]), { padding: [8, 8] });
    m.fitted = true;
  }
}
function drawRegistry(map) {
  const geo = L.geoJSON(S.layers, {
    style: (f) => f.properties.layer === "area"
      ? { color: "#12355b", weight: 2, fillColor: "#cfe0f5", fillOpacity: 0.35 } : {},
    pointToLayer: (f, latlng) => L.circleMarker(latlng, f.properties.layer === "key_zone"
      ? { radius: 4, color: "#12355b", weight: 1, fillColor: "#3d7cc9", fillOpacity: 0.9 }
      : { radius: 1.5, color: "#888", weight: 0, fillColor: "#888", fillOpacity: 0.7 }),
    onEachFeature: (f, layer) => {
      if (f.properties.id) layer.bindTooltip(`${f.properties.id} ${f.properties.name_zh}`);
    },
  }).addTo(map);
  return geo.getBounds();
}
const registryPoint = (id) => {
  const f = S.layers?.features.find((x) => x.properties.id === id);
  return f ? [f.geometry.coordinates[1], f.geometry.coordinates[0]] : null;
};
const PRIORITY_COLOUR = { P1: "#c0392b", P2: "#e67e22", P3: "#b7950b", P4: "#7f8c8d" };

/* --- views --------------------------------------------------------------------------- */
function route() {
  const [, view, id] = (location.hash || "#/board").split("/");
  document.querySelectorAll(".view").forEach((v) => v.classList.remove("shown"));
  document.querySelectorAll("header nav a").forEach((a) =>
    a.classList.toggle("active", a.getAttribute("href") === `#/${view}`));
  const shown = $(`#view-${view}`) || $("#view-board");
  shown.classList.add("shown");
  S.current = view === "incident" ? decodeURIComponent(id || "") : null;
  if (view === "incident" && S.current) loadIncident(S.current);
  if (view === "audit") loadAudit();
  for (const m of Object.values(S.maps)) setTimeout(() => fitWhenShown(m), 0);
  render();
}

function render() {
  if (!S.token) return;
  renderBoard();
  if (S.current && S.details.has(S.current)) renderIncident(S.details.get(S.current));
  renderAudit();
}

function countdown(summary) {
  if (!summary.ack_deadline || !["dispatched", "escalated"].includes(summary.state)) return "";
  const left = Math.round((new Date(summary.ack_deadline) - Date.now()) / 1000);
  const late = left < 0 ? " late" : "";
  const m = Math.floor(Math.abs(left) / 60), s = String(Math.abs(left) % 60).padStart(2, "0");
  return `<span class="countdown${late}" title="${t("deadline")}">${left < 0 ? "-" : ""}${m}:${s}</span>`;
}
function quorumText(q) {
  if (!q) return "";
  const zone = q.zone_team_needed ? (q.zone_team_ok ? "✔" : "✘") : "–";
  return `<span class="quorum ${q.met ? "met" : "not"}">${t("quorum")} ${t("zone")}${zone} ` +
    `${t("units")} ${q.units_ok} (${t("need")} ${q.units_needed})</span>`;
}
function gridCells(grid, mini) {
  return `<div class="grid${mini ? " mini" : ""}">` + (grid || []).filter((g) =>
    ["key_zone", "unit"].includes(g.kind)).map((g) =>
    `<span class="cell ${esc(g.kind)} ${esc(g.status)}" title="${esc(g.id)} ${esc(g.name_zh)}` +
    `${g.distance_m != null ? ` ${Math.round(g.distance_m)} m` : ""}: ${esc(t(g.status))}">` +
    `${mini ? "" : `${esc(g.name_zh || g.id)} · ${esc(t(g.status))}`}</span>`).join("") + "</div>";
}

function renderBoard() {
  const open = [...S.incidents.values()].filter((i) =>
    !["closed", "cancelled"].includes(i.state)).sort((a, b) =>
    (a.priority || "P9").localeCompare(b.priority || "P9") || (a.raised_at || "").localeCompare(b.raised_at || ""));
  $("#board").innerHTML = open.length ? open.map((i) => `
    <div class="card ${esc(i.priority)} ${esc(i.state)}" data-id="${esc(i.id)}">
      <div class="row"><span class="badge ${esc(i.priority)}">${esc(i.priority)}</span>
        <strong>${esc(t(i.type))}</strong> <span>${esc(i.address || "")}</span>
        <span class="state ${esc(i.state)}">${esc(t(i.state))}</span>
        ${i.stage ? `<span class="badge">${esc(t("stage", i.stage))}</span>` : ""} ${countdown(i)}</div>
      <div class="row"><code>${esc(i.id)}</code> ${t("zone")} <b>${esc(i.zone_id || "—")}</b>
        ${quorumText(i.quorum)} ${t("called")} ${i.called} · ${t("delivered")} ${i.delivered}</div>
      ${gridCells(S.details.get(i.id)?.grid, true)}
    </div>`).join("") : `<p>${t("none")}</p>`;
  document.querySelectorAll("#board .card").forEach((c) =>
    c.addEventListener("click", () => { location.hash = `#/incident/${encodeURIComponent(c.dataset.id)}`; }));
  const m = S.maps["board-map"];
  if (m) {
    m.overlay.clearLayers();
    open.forEach((i) => {
      if (!i.location) return;
      L.circleMarker([i.location.lat, i.location.lon], { radius: 9, color: "#000", weight: 1,
        fillColor: PRIORITY_COLOUR[i.priority] || "#555", fillOpacity: 0.95 })
        .bindTooltip(`${i.priority} ${t(i.type)} ${i.address || ""}`).addTo(m.overlay);
    });
  }
}

async function loadIncident(id) {
  try {
    const { status, body } = await api(`/v1/incidents/${encodeURIComponent(id)}`);
    if (status === 200) { S.details.set(id, body); S.incidents.set(id, body); render(); }
  } catch (e) { /* signed out */ }
}
let detailTimer = new Map();
function refreshDetail(id) {  // at most one fetch per incident per 300 ms
  if (detailTimer.has(id)) return;
  detailTimer.set(id, setTimeout(() => { detailTimer.delete(id); loadIncident(id); }, 300));
}

function renderIncident(d) {
  $("#inc-head").innerHTML = `
    <h2><span class="badge ${esc(d.priority)}">${esc(d.priority)}</span> ${esc(t(d.type))}
      <span class="state ${esc(d.state)}">${esc(t(d.state))}</span> ${countdown(d)}</h2>
    <div><code>${esc(d.id)}</code> · ${esc(d.address || "")} · ${hhmmss(d.raised_at)}</div>
    <div>${t("zone")} <b>${esc(d.zone_id || "—")}</b> ${d.stage ? esc(t("stage", d.stage)) : ""}
      · ${quorumText(d.quorum)}</div>
    <p>${esc(d.incident?.description || "")}</p>`;
  $("#inc-grid").innerHTML = gridCells(d.grid, false);
  $("#inc-timeline").innerHTML = (d.timeline || []).map((e) =>
    `<li>${hhmmss(e.at)} <span class="state ${esc(e.state)}">${esc(t(e.state))}</span>
      <span class="who">${esc(e.who)}</span> ${esc(e.what)}</li>`).join("");
  $("#inc-decisions").innerHTML = (d.decisions || []).map((dec) =>
    `<div><b>${esc(t("stage", dec.stage))}</b> ${esc(dec.zone?.id || "")}
      <ul class="reasons">${(dec.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("")}</ul></div>`).join("");
  if (!$("#inc-commands").dataset.built) buildCommands();
  const m = makeMap("inc-map");
  m.overlay.clearLayers();
  if (d.location) {
    const scene = [d.location.lat, d.location.lon];
    L.circleMarker(scene, { radius: 11, color: "#000", weight: 2, fillColor: PRIORITY_COLOUR[d.priority], fillOpacity: 1 })
      .bindTooltip(`${d.priority} ${t(d.type)}`).addTo(m.overlay);
    (d.grid || []).forEach((g) => {
      const p = registryPoint(g.id);
      if (!p) return;
      const colour = { accepted: "#1e8449", on_scene: "#6c3483", declined: "#c0392b", delivered: "#2874a6", failed: "#b9770e" }[g.status] || "#7f8c8d";
      L.polyline([scene, p], { color: colour, weight: g.kind === "key_zone" ? 3 : 1, opacity: 0.8 }).addTo(m.overlay);
      L.circleMarker(p, { radius: g.kind === "key_zone" ? 7 : 4, color: colour, fillColor: colour, fillOpacity: 1 })
        .bindTooltip(`${g.id} ${g.name_zh || ""} ${g.distance_m != null ? Math.round(g.distance_m) + " m" : ""} · ${t(g.status)}`)
        .addTo(m.overlay);
    });
    if (m.centred !== d.id && m.map.getSize().x > 0) { m.map.setView(scene, 15); m.centred = d.id; m.fitted = true; }
  }
}

function buildCommands() {
  const box = $("#inc-commands");
  box.dataset.built = "1";
  box.innerHTML = COMMANDS.map(([name]) =>
    `<button type="button" data-cmd="${name}" class="${["cancel", "close"].includes(name) ? "danger" : ""}" data-i18n="${name}">${esc(t(name))}</button>`).join("");
  box.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => openCommand(b.dataset.cmd)));
}

function openCommand(name) {
  const fields = Object.fromEntries(COMMANDS)[name];
  const form = $("#inc-command-form");
  if (!fields.length) { sendCommand(name, {}); form.hidden = true; return; }
  form.hidden = false;
  form.innerHTML = `<form id="cmd-form"><b>${esc(t(name))}</b>` + fields.map((f) => f === "priority"
    ? `<label><span>${t("priority")}</span><select name="priority"><option>P1</option><option>P2</option><option>P3</option><option>P4</option></select></label>`
    : `<label><span>${t(f)}</span><input name="${f}" ${f === "reason" && name !== "note" ? "" : "required"}></label>`).join("") +
    (name === "move" ? `<p class="hint">${t("confirm_move")}</p>` : "") +
    `<button type="submit">${t("send")}</button></form>`;
  $("#cmd-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = Object.fromEntries(new FormData(ev.target));
    const body = {};
    if (v.reason) body.reason = v.reason;
    if (v.zone_id) body.zone_id = v.zone_id.trim();
    if (v.priority) body.priority = v.priority;
    if (name === "move") body.location = { lat: Number(v.lat), lon: Number(v.lon) };
    sendCommand(name === "change" ? "priority" : name, body);
    form.hidden = true;
  });
  if (name === "move") {
    const m = S.maps["inc-map"];
    m.map.once("click", (e) => {
      const f = $("#cmd-form");
      if (f) { f.lat.value = e.latlng.lat.toFixed(6); f.lon.value = e.latlng.lng.toFixed(6); }
    });
  }
}

async function sendCommand(action, body) {
  const out = $("#inc-result");
  out.className = "result";
  out.textContent = "…";
  const { status, body: res } = await api(
    `/v1/incidents/${encodeURIComponent(S.current)}/${action}`,
    { method: "POST", body: JSON.stringify(body) });
  if (status === 200) { out.className = "result applied"; out.textContent = `${t("applied")}: ${res.reason}`; }
  else { out.className = "result refused"; out.textContent = `${t("refused")} (${status}): ${detailText(res)}`; }
  loadIncident(S.current);
}

/* --- new incident -------------------------------------------------------------------- */
function setupNewForm() {
  const m = makeMap("new-map");
  let pin = null;
  m.map.on("click", (e) => {
    $("#f-lat").value = e.latlng.lat.toFixed(6);
    $("#f-lon").value = e.latlng.lng.toFixed(6);
    if (pin) pin.remove();
    pin = L.circleMarker(e.latlng, { radius: 9, color: "#000", fillColor: "#c0392b", fillOpacity: 1 }).addTo(m.map);
  });
  $("#new-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const body = { type: f.type.value, priority: f.priority.value,
      location: { lat: Number(f.lat.value), lon: Number(f.lon.value) } };
    if (f.address.value) body.address = f.address.value;
    if (f.description.value) body.description = f.description.value;
    $("#new-error").textContent = "";
    const { status, body: res } = await api("/v1/incidents", { method: "POST", body: JSON.stringify(body) });
    if (status === 201) { f.reset(); location.hash = `#/incident/${encodeURIComponent(res.id)}`; }
    else $("#new-error").textContent = `${status}: ${status === 403 ? t("forbidden") : detailText(res)}`;
  });
}

/* --- audit --------------------------------------------------------------------------- */
async function loadAudit(ev) {
  if (ev) ev.preventDefault();
  const f = $("#audit-form");
  const q = new URLSearchParams();
  if (f.actor.value) q.set("actor", f.actor.value);
  if (f.incident.value) q.set("incident", f.incident.value);
  const { status, body } = await api(`/v1/audit?${q}`);
  if (status === 200) { S.audit = body.entries; renderAudit(); }
}
function renderAudit() {
  $("#audit-table tbody").innerHTML = S.audit.slice(0, 500).map((e) =>
    `<tr class="${esc(e.result || "")}"><td>${hhmmss(e.at)}</td><td>${esc(e.kind)}</td><td>${esc(e.actor)}</td>
     <td>${e.incident_id ? `<a href="#/incident/${encodeURIComponent(e.incident_id)}">${esc(e.incident_id)}</a>` : ""}</td>
     <td>${esc(e.action || "")}</td><td>${esc(e.result ? t(e.result) : "")}</td><td>${esc(e.what)}</td></tr>`).join("");
}

/* --- live events --------------------------------------------------------------------- */
async function follow() {
  while (S.token) {
    try {
      const r = await fetch("/v1/events", { headers: { Authorization: `Bearer ${S.token}` } });
      if (r.status === 401) { signOut(t("badtoken")); return; }
      if (!r.ok) throw new Error(String(r.status));
      live(true);
      await loadAll();  // whatever happened while not connected
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) { /* reconnect below */ }
    live(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}
function live(on) {
  S.live = on;
  const el = $("#live");
  el.className = `live ${on ? "on" : "off"}`;
  el.textContent = t(on ? "online" : "offline");
}
function onEvent(ev) {
  if (ev.type === "incident") {
    S.incidents.set(ev.incident.id, ev.incident);
    refreshDetail(ev.incident.id);
    renderBoard();
  } else if (ev.type === "ack") {
    refreshDetail(ev.incident_id);
  } else if (ev.type === "audit") {
    S.audit.unshift(ev.entry);
    if (S.audit.length > 1000) S.audit.length = 1000;
    if ($("#view-audit").classList.contains("shown")) renderAudit();
  }
}

async function loadAll() {
  const { status, body } = await api("/v1/incidents?status=open");
  if (status !== 200) return;
  body.incidents.forEach((i) => { S.incidents.set(i.id, i); refreshDetail(i.id); });
  render();
}

/* --- sign in ------------------------------------------------------------------------- */
function signOut(message) {
  S.token = "";
  sessionStorage.removeItem("token");
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}
async function signIn(token) {
  S.token = token;
  const r = await fetch("/v1/whoami", { headers: { Authorization: `Bearer ${token}` } });
  if (r.status !== 200) { signOut(t("badtoken")); return; }
  const me = await r.json();
  sessionStorage.setItem("token", token);
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#login").hidden = true;
  $("#app").hidden = false;
  const layers = await api("/v1/map");
  S.layers = layers.body;
  route();
  makeMap("board-map");
  setupNewForm();
  route();
  follow();
}

window.addEventListener("hashchange", route);
$("#lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh";
  localStorage.setItem("lang", S.lang);
  applyLang();
});
$("#logout").addEventListener("click", () => signOut(""));
$("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
$("#audit-form").addEventListener("submit", loadAudit);
setInterval(() => { if (S.token) { renderBoard(); if (S.current && S.details.has(S.current)) renderIncident(S.details.get(S.current)); } }, 1000);
applyLang();
if (S.token) signIn(S.token); else signOut("");
