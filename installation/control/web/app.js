// Tapestry's phone page: talks only to the piece that served it (no CDN, no internet).
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("tapestry-token") || "";
let state = null;
let editing = new Set();  // controls the user is dragging: polling does not move them

async function api(path, body) {
  const opts = { headers: { "X-Tapestry-Token": token } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { showLogin("Wrong or missing PIN."); throw new Error("401"); }
  const data = r.headers.get("Content-Type")?.startsWith("application/json") ? await r.json() : null;
  if (!r.ok) { say((data && data.error) || `HTTP ${r.status}`, true); throw new Error(String(r.status)); }
  return data;
}

function say(text, bad) { const m = $("message"); m.textContent = text; m.className = bad ? "message bad" : "message"; }

function showLogin(err) {
  $("app").hidden = true; $("login").hidden = false; $("login-error").textContent = err || "";
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  token = $("token").value; localStorage.setItem("tapestry-token", token);
  try { await refresh(); $("login").hidden = true; $("app").hidden = false; } catch (_) { /* shown */ }
});

function setParam(path, value) { return api("/api/set", { path, value }).catch(() => {}); }

function fmt(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v); }

function control(p) {
  const row = document.createElement("div"); row.className = "param";
  const id = "p-" + p.path.replaceAll("/", "-");
  const label = document.createElement("label"); label.htmlFor = id; label.textContent = p.path.split("/").slice(1).join("/") || p.path;
  label.title = p.description + (p.unit ? ` (${p.unit})` : "") + (p.live ? "" : " — takes effect on restart");
  let input; const out = document.createElement("output");
  if (p.kind === "float" || p.kind === "int") {
    input = document.createElement("input"); input.type = "range"; input.min = p.lo; input.max = p.hi;
    input.step = p.kind === "int" ? 1 : (p.hi - p.lo) / 1000;
    input.addEventListener("pointerdown", () => editing.add(p.path));
    input.addEventListener("change", () => editing.delete(p.path));
    input.addEventListener("input", () => { out.textContent = fmt(Number(input.value)); setParam(p.path, Number(input.value)); });
  } else if (p.kind === "bool") {
    input = document.createElement("input"); input.type = "checkbox";
    input.addEventListener("change", () => setParam(p.path, input.checked));
  } else {
    input = document.createElement("select");
    for (const c of p.choices) { const o = document.createElement("option"); o.value = o.textContent = c; input.append(o); }
    input.addEventListener("change", () => setParam(p.path, input.value));
  }
  input.id = id; input.dataset.path = p.path;
  row.append(label, input, out);
  return row;
}

function buildParams(params) {
  const box = $("params"); box.textContent = "";
  const groups = new Map();
  for (const p of params) {
    const g = p.path.split("/")[0];
    if (!groups.has(g)) { const d = document.createElement("details"); const s = document.createElement("summary");
      s.textContent = g; d.append(s); groups.set(g, d); box.append(d); }
    groups.get(g).append(control(p));
  }
}

function fill(select, names, current) {
  const key = names.join("\n");
  if (select.dataset.key !== key) {
    select.textContent = "";
    for (const n of names) { const o = document.createElement("option"); o.value = o.textContent = n; select.append(o); }
    select.dataset.key = key;
  }
  if (current && document.activeElement !== select) select.value = current;
}

function render(s) {
  if (!state || state.params.length !== s.params.length) buildParams(s.params);
  state = s;
  for (const p of s.params) {
    const el = document.querySelector(`[data-path="${p.path}"]`);
    if (!el || editing.has(p.path) || document.activeElement === el) continue;
    if (el.type === "checkbox") el.checked = !!p.value; else el.value = p.value;
    el.nextElementSibling.textContent = fmt(p.value);
    if (p.path === "show/master" && !editing.has("master")) { $("master").value = p.value; $("master-out").textContent = fmt(p.value); }
    if (p.path === "show/blackout") { $("blackout").classList.toggle("on", !!p.value); $("blackout").textContent = p.value ? "Blackout ON" : "Blackout"; }
  }
  fill($("preset"), s.presets, s.preset);
  fill($("scene"), s.scenes, s.scene);
  $("scene-row").hidden = s.scenes.length === 0;
  const h = s.hours;
  $("hours-row").hidden = !h;
  if (h) $("hours").textContent = (h.open ? "Open" : "Closed") + (h.override ? ` (override until ${h.until})` : " (hours)") + ` — level ${h.level}`;
}

function renderHealth(h) {
  const st = $("status"); st.textContent = `${h.status} · ${Number(h.fps || 0).toFixed(1)} fps`; st.className = "pill " + h.status;
  const box = $("health"); box.textContent = "";
  const add = (text, bad) => { const d = document.createElement("div"); d.textContent = text; if (bad) d.className = "bad"; box.append(d); };
  add(`fps ${Number(h.fps || 0).toFixed(1)}, frame ms p95 ${h.frame_ms ? h.frame_ms.p95 : "-"}, frames ${h.frames}`);
  for (const kind of ["outputs", "sensors"]) {
    for (const [name, e] of Object.entries(h[kind] || {})) {
      const state = (e && e.state) || "?";
      add(`${kind.slice(0, -1)} ${name}: ${state}`, !["ok", "running", "disabled", "idle", "?"].includes(state));
    }
  }
  for (const e of (h.errors || []).slice(-5)) add(`${e.time || ""} ${e.source || ""}: ${e.message || ""}`, true);
}

async function refresh() {
  render(await api("/api/state"));
  try { renderHealth(await api("/health")); } catch (_) { /* shown */ }
}

async function thumb() {
  try {
    const r = await fetch("/api/thumbnail.jpg", { headers: { "X-Tapestry-Token": token } });
    if (r.ok) { const url = URL.createObjectURL(await r.blob()); const img = $("thumb");
      const old = img.src; img.src = url; if (old.startsWith("blob:")) URL.revokeObjectURL(old); }
  } catch (_) { /* next time */ }
}

$("master").addEventListener("pointerdown", () => editing.add("master"));
$("master").addEventListener("change", () => editing.delete("master"));
$("master").addEventListener("input", () => { const v = Number($("master").value); $("master-out").textContent = fmt(v); setParam("show/master", v); });
$("blackout").addEventListener("click", () => {
  const on = !(state && state.params.find((p) => p.path === "show/blackout").value);
  api("/api/blackout", { on }).then(refresh).catch(() => {});
});
$("preset-go").addEventListener("click", () => api("/api/preset/load", { name: $("preset").value, fade_s: Number($("fade").value) }).then(() => say(`loading ${$("preset").value}`)).catch(() => {}));
$("scene-go").addEventListener("click", () => api("/api/scene/go", { name: $("scene").value }).then(() => say(`scene ${$("scene").value}`)).catch(() => {}));
$("scene-next").addEventListener("click", () => api("/api/scene/next", {}).then(() => say("next scene")).catch(() => {}));
for (const [id, mode] of [["open-now", "open"], ["closed-now", "closed"], ["hours-auto", "auto"]]) {
  $(id).addEventListener("click", () => api("/api/hours", { mode, minutes: Number($("hours-min").value) }).then(() => say(`hours: ${mode}`)).catch(() => {}));
}

(async () => {
  try { await refresh(); $("app").hidden = false; } catch (e) { if (e.message !== "401") say(String(e), true); return; }
  setInterval(() => refresh().catch(() => {}), 1000);
  setInterval(thumb, 1000); thumb();
})();
// after a login the timers start too
$("login-form").addEventListener("submit", () => { if (!window._timers) { window._timers = true;
  setInterval(() => { if (!$("app").hidden) refresh().catch(() => {}); }, 1000); setInterval(() => { if (!$("app").hidden) thumb(); }, 1000); } });
