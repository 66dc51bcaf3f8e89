// veil review page: plain JavaScript, no external resources.
// Boxes are in source pixels everywhere (edit list, API); only drawing scales them.
"use strict";

const $ = (id) => document.getElementById(id);
const IOU = 0.3; // an edit's box affects detections it overlaps this much (veil.edits.IOU)
const S = {
  info: null, kind: "video", timeline: null, flags: [], photos: [], index: 0, faces: [],
  shot: [0, 0], edits: null, dirty: false, sel: null, drag: null, methods: [], load: 0,
  size: [0, 0], frameUrl: null, polling: null,
};

// ---- talking to the server -------------------------------------------------------------
function token() { return sessionStorage.getItem("veil-token"); }
function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: "Bearer " + t } : extra;
}
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { const body = await response.json(); message = body.error ? body.error.message : message; } catch (e) { /* not JSON */ }
    const error = new Error(message); error.status = response.status; throw error;
  }
  return response;
}
const json = async (path, options) => (await api(path, options)).json();
async function blobUrl(path) { return URL.createObjectURL(await (await api(path)).blob()); }
function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}
const itemQuery = () => (S.kind === "photos" ? "?item=" + S.index : "");

// ---- geometry -------------------------------------------------------------------------
function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h, area = (r) => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / (area(a) + area(b) - inter);
}
const covers = (entry, i) => entry.frames[0] <= i && i <= entry.frames[1];
const sameEntry = (e, c) => e.frames[0] === c.frames[0] && e.frames[1] === c.frames[1] &&
  e.box.every((v, k) => Math.abs(v - c.box[k]) < 0.01);
function scale() { return $("frame").clientWidth / S.size[0] || 1; }
function toSource(event) {
  const r = $("overlay").getBoundingClientRect(), k = scale();
  const x = Math.min(Math.max(event.clientX - r.left, 0), r.width);
  const y = Math.min(Math.max(event.clientY - r.top, 0), r.height);
  return [x / k, y / k];
}

// ---- what the edits do to this frame --------------------------------------------------
function faceState(face) {
  const best = (list) => list.filter((e) => covers(e, S.index) && iou(e.box, face.box) >= IOU)
    .sort((a, b) => iou(b.box, face.box) - iou(a.box, face.box))[0];
  const removed = best(S.edits.remove);
  const method = best(S.edits.methods || []);
  return { removed: Boolean(removed), method: method ? method.method : null };
}
function addedHere() {
  return S.edits.add.map((e, k) => ({ e, k })).filter(({ e }) => covers(e, S.index));
}

// ---- drawing ----------------------------------------------------------------------------
function drawOverlay() {
  if (!S.edits) return;
  const img = $("frame"), canvas = $("overlay"), ratio = window.devicePixelRatio || 1;
  fitFrame();
  canvas.width = img.clientWidth * ratio; canvas.height = img.clientHeight * ratio;
  canvas.style.width = img.clientWidth + "px"; canvas.style.height = img.clientHeight + "px";
  const ctx = canvas.getContext("2d"), k = scale() * ratio;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2 * ratio; ctx.font = `${12 * ratio}px system-ui, sans-serif`;
  const rect = (b, colour, dash = []) => {
    ctx.setLineDash(dash.map((d) => d * ratio)); ctx.strokeStyle = colour;
    ctx.strokeRect(b[0] * k, b[1] * k, (b[2] - b[0]) * k, (b[3] - b[1]) * k);
  };
  const label = (b, text, colour) => {
    ctx.fillStyle = colour; ctx.fillText(text, b[0] * k + 2 * ratio, Math.max(b[1] * k - 4 * ratio, 12 * ratio));
  };
  S.faces.forEach((face, n) => {
    const st = faceState(face), src = face.source || "detected";
    const colour = st.removed ? "#e53935" : src !== "detected" ? "#fdd835" : face.score < 0.4 ? "#fb8c00" : "#43a047";
    rect(face.box, colour, src === "detected" ? [] : [6, 4]);
    if (st.removed) {
      const b = face.box.map((v) => v * k);
      ctx.beginPath(); ctx.moveTo(b[0], b[1]); ctx.lineTo(b[2], b[3]); ctx.moveTo(b[2], b[1]); ctx.lineTo(b[0], b[3]); ctx.stroke();
    }
    const id = face.track_id !== undefined && face.track_id !== null ? "#" + face.track_id + " " : "";
    label(face.box, `${id}${face.score.toFixed(2)}${st.method ? " " + st.method : ""}`, colour);
    if (S.sel && S.sel.type === "face" && S.sel.n === n) rect(face.box, "#fff", [2, 2]);
  });
  for (const { e, k: n } of addedHere()) {
    rect(e.box, "#1e88e5", e.at === S.index || S.kind === "photos" ? [] : [3, 3]);
    label(e.box, `add[${n}]${e.track ? " tracked" : ""}`, "#1e88e5");
    if (S.sel && S.sel.type === "added" && S.sel.k === n) rect(e.box, "#fff", [2, 2]);
  }
  const box = S.drag ? S.drag.box : S.sel && S.sel.type === "new" ? S.sel.box : null;
  if (box) rect(box, "#1e88e5", [8, 4]);
}

function fitFrame() {
  // as wide as the column allows, no taller than 70% of the window (small videos scaled up)
  const room = $("viewer").clientWidth, [w, h] = S.size;
  if (w && h) $("frame").style.width = Math.floor(Math.min(room, (window.innerHeight * 0.7 * w) / h)) + "px";
}

function drawTimeline() {
  const t = S.timeline, canvas = $("timeline");
  if (!t) return;
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth * ratio, h = canvas.clientHeight * ratio;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), n = t.frames, maxCount = Math.max(1, ...t.counts);
  const x = (f) => (f / n) * w, band = 10 * ratio, top = 8 * ratio, bars = h - top - band;
  ctx.fillStyle = "#8881"; ctx.fillRect(0, 0, w, h);
  for (let px = 0; px < w; px++) {
    const f0 = Math.floor((px / w) * n), f1 = Math.max(f0 + 1, Math.floor(((px + 1) / w) * n));
    let count = 0, low = null, tracked = 0;
    for (let f = f0; f < f1 && f < n; f++) {
      count = Math.max(count, t.counts[f]); tracked = Math.max(tracked, t.tracked[f]);
      if (t.scores[f] !== null) low = low === null ? t.scores[f] : Math.min(low, t.scores[f]);
    }
    if (!count) continue;
    ctx.fillStyle = low === null ? "#fdd835" : low < 0.4 ? "#fb8c00" : "#43a047";
    const bh = (count / maxCount) * bars;
    ctx.fillRect(px, top + bars - bh, 1, bh);
  }
  ctx.fillStyle = "#1e88e5";
  for (const c of t.cuts) ctx.fillRect(x(c), 0, ratio, h - band);
  ctx.fillStyle = "#e53935";
  for (const f of S.flags) if (f.kind !== "cut") ctx.fillRect(x(f.frame), 0, 2 * ratio, top - ratio);
  const spans = (list, colour, y) => {
    ctx.fillStyle = colour;
    for (const e of list) ctx.fillRect(x(e.frames[0]), y, Math.max(x(e.frames[1] + 1) - x(e.frames[0]), ratio), band / 2);
  };
  if (S.edits) { spans(S.edits.add, "#1e88e5", h - band); spans(S.edits.remove, "#e53935", h - band / 2); }
  ctx.fillStyle = getComputedStyle(document.body).color;
  ctx.fillRect(x(S.index), 0, 2 * ratio, h);
}

function listFlags() {
  $("flag-count").textContent = `(${S.flags.length})`;
  $("flags").replaceChildren(...S.flags.slice(0, 2000).map((f) => {
    const li = document.createElement("li"), b = document.createElement("button");
    b.type = "button"; b.className = "plain flag " + f.kind;
    const where = S.kind === "photos" ? "" : `frame ${f.frame}: `;
    b.textContent = `${where}${f.kind} — ${f.detail}`;
    b.addEventListener("click", () => goto(f.frame));
    li.append(b); return li;
  }));
}

function listEdits() {
  const rows = [];
  for (const kind of ["add", "remove", "methods"]) {
    (S.edits[kind] || []).forEach((e, k) => {
      const li = document.createElement("li"), go = document.createElement("button"), del = document.createElement("button");
      go.type = del.type = "button"; go.className = "plain"; del.className = "plain del";
      const range = S.kind === "photos" ? "" : ` frames ${e.frames[0]}–${e.frames[1]}`;
      const extra = kind === "methods" ? ` → ${e.method}` : kind === "add" && e.track ? " tracked" : "";
      go.textContent = `${kind}[${k}]${range} [${e.box.map(Math.round).join(", ")}]${extra}`;
      go.addEventListener("click", () => goto(e.at !== undefined ? e.at : e.frames[0]));
      del.textContent = "×"; del.title = "Delete this edit"; del.setAttribute("aria-label", `Delete ${kind}[${k}]`);
      del.addEventListener("click", () => { S.edits[kind].splice(k, 1); changed(); });
      li.append(go, del); rows.push(li);
    });
  }
  $("edits").replaceChildren(...rows);
}

function changed(dirty = true) {
  S.dirty = dirty || S.dirty;
  $("dirty").hidden = !S.dirty;
  listEdits(); drawOverlay(); drawTimeline(); showSelection();
}

// ---- selection ---------------------------------------------------------------------------
function showSelection() {
  const sel = S.sel;
  $("selection").hidden = !sel;
  if (!sel) return;
  $("sel-face").hidden = sel.type !== "face"; $("sel-new").hidden = sel.type !== "new";
  if (sel.type === "face") {
    const face = S.faces[sel.n], st = faceState(face);
    const id = face.track_id !== undefined && face.track_id !== null ? face.track_id : null;
    $("sel-title").textContent = id !== null && S.kind === "video" ? `Track ${id}` : "Face";
    $("sel-detail").textContent = `score ${face.score.toFixed(2)}, ${face.source || "detected"}` +
      (id !== null && S.timeline ? `, frames ${S.timeline.tracks[id].join("–")}` : "");
    $("remove-track").hidden = st.removed; $("restore-track").hidden = !st.removed;
    $("track-method").value = st.method || "";
  } else if (sel.type === "new") {
    $("sel-title").textContent = "New face";
    $("sel-detail").textContent = `box [${sel.box.map(Math.round).join(", ")}] on frame ${S.index}`;
  } else {
    $("selection").hidden = true;
  }
}

async function trackChunks(face) {
  if (S.kind === "photos" || face.track_id === undefined || face.track_id === null) {
    const f = S.kind === "photos" ? [0, 0] : [S.index, S.index];
    return [{ frames: f, box: face.box.map((v) => +v.toFixed(2)) }];
  }
  return (await json(`/api/review/tracks/${face.track_id}`)).chunks;
}

async function removeTrack() {
  const chunks = await trackChunks(S.faces[S.sel.n]);
  for (const c of chunks) if (!S.edits.remove.some((e) => sameEntry(e, c))) S.edits.remove.push(c);
  changed();
}

async function restoreTrack() {
  const face = S.faces[S.sel.n], chunks = await trackChunks(face);
  S.edits.remove = S.edits.remove.filter((e) => !chunks.some((c) => sameEntry(e, c)) &&
    !(covers(e, S.index) && iou(e.box, face.box) >= IOU));
  changed();
}

async function setMethod() {
  const method = $("track-method").value, chunks = await trackChunks(S.faces[S.sel.n]);
  S.edits.methods = (S.edits.methods || []).filter((e) => !chunks.some((c) => sameEntry(e, c)));
  if (method) for (const c of chunks) S.edits.methods.push({ ...c, method });
  changed();
}

function addFace() {
  const box = S.sel.box.map((v) => +v.toFixed(1));
  if (S.kind === "photos") {
    S.edits.add.push({ frames: [0, 0], box, track: false });
  } else {
    const last = S.info.frames - 1, clamp = (v) => Math.min(Math.max(Math.round(v), 0), last);
    let first = clamp(+$("add-first").value), end = clamp(+$("add-last").value);
    if (first > S.index) first = S.index;
    if (end < S.index) end = S.index;
    S.edits.add.push({ frames: [first, end], box, track: $("add-track").checked, at: S.index });
  }
  S.sel = null; changed();
}

function hit(point) {
  const inside = (b) => b[0] <= point[0] && point[0] <= b[2] && b[1] <= point[1] && point[1] <= b[3];
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  const faces = S.faces.map((f, n) => ({ n, b: f.box })).filter(({ b }) => inside(b)).sort((a, b) => area(a.b) - area(b.b));
  if (faces.length) return { type: "face", n: faces[0].n };
  const added = addedHere().filter(({ e }) => inside(e.box));
  return added.length ? { type: "added", k: added[0].k } : null;
}

function pointerDown(event) {
  if (event.button !== 0 || !S.edits) return;
  const p = toSource(event);
  S.drag = { start: p, box: [p[0], p[1], p[0], p[1]], moved: false };
  $("overlay").setPointerCapture(event.pointerId);
}
function pointerMove(event) {
  if (!S.drag) return;
  const p = toSource(event), s = S.drag.start;
  S.drag.box = [Math.min(s[0], p[0]), Math.min(s[1], p[1]), Math.max(s[0], p[0]), Math.max(s[1], p[1])];
  S.drag.moved = S.drag.moved || Math.abs(p[0] - s[0]) * scale() > 4 || Math.abs(p[1] - s[1]) * scale() > 4;
  drawOverlay();
}
function pointerUp() {
  const drag = S.drag;
  S.drag = null;
  if (!drag) return;
  if (drag.moved && drag.box[2] - drag.box[0] >= 2 && drag.box[3] - drag.box[1] >= 2) {
    S.sel = { type: "new", box: drag.box };
    $("add-first").value = S.shot[0]; $("add-last").value = S.shot[1];
  } else {
    S.sel = hit(drag.start);
    if (S.sel && S.sel.type === "added") {
      const k = S.sel.k;
      if (confirm(`Delete add[${k}]?`)) { S.edits.add.splice(k, 1); S.sel = null; changed(); return; }
      S.sel = null;
    }
  }
  drawOverlay(); showSelection();
}

// ---- frames ---------------------------------------------------------------------------------
async function goto(index) {
  const count = S.kind === "photos" ? S.photos.length : S.info.frames;
  index = Math.min(Math.max(Math.round(index) || 0, 0), count - 1);
  if (S.kind === "photos" && index !== S.index && S.dirty) await save();
  const ticket = ++S.load;
  const switching = S.kind === "photos" && index !== S.index;
  S.index = index; S.sel = null; $("frame-no").value = index; drawTimeline();
  try {
    const [url, faces, edits] = await Promise.all([
      blobUrl(`/api/review/frames/${index}.jpg`),
      json(`/api/review/frames/${index}/faces`),
      switching || !S.edits ? json("/api/review/edits" + itemQuery()) : null,
    ]);
    if (ticket !== S.load) { URL.revokeObjectURL(url); return; }
    if (S.frameUrl) URL.revokeObjectURL(S.frameUrl);
    S.frameUrl = url; S.faces = faces.faces; S.shot = faces.shot || [0, 0];
    if (edits) { S.edits = edits; S.dirty = false; }
    if (S.kind === "photos") {
      const p = S.photos.find((q) => q.index === index);
      S.size = [p.width, p.height]; $("frame-count").textContent = p.name;
      document.querySelectorAll(".thumb").forEach((t) => t.classList.toggle("current", +t.dataset.index === index));
    }
    const img = $("frame");
    img.onload = () => { drawOverlay(); };
    img.src = url; img.dataset.index = index;
    changed(false);
  } catch (e) {
    say(e.message, true);
  }
}

function step(delta) { goto(S.index + delta); }
function flagStep(delta) {
  const frames = [...new Set(S.flags.map((f) => f.frame))].sort((a, b) => a - b);
  const target = delta > 0 ? frames.find((f) => f > S.index) : frames.reverse().find((f) => f < S.index);
  if (target !== undefined) goto(target);
}

function timelinePick(event) {
  const r = $("timeline").getBoundingClientRect();
  return Math.floor(((event.clientX - r.left) / r.width) * S.info.frames);
}

// ---- save, render, download ---------------------------------------------------------------
async function save() {
  try {
    const body = JSON.stringify(S.edits);
    S.edits = await json("/api/review/edits" + itemQuery(), {
      method: "PUT", body, headers: { "Content-Type": "application/json" },
    });
    S.dirty = false; changed(false);
    if (S.kind === "photos") {
      const p = S.photos.find((q) => q.index === S.index);
      if (p) p.edited = S.edits.add.length + S.edits.remove.length + (S.edits.methods || []).length > 0;
    }
    say("Edits saved to " + S.info.edits + (S.kind === "photos" ? "/" + currentName() + ".edits.json" : "") + ".");
    return true;
  } catch (e) {
    say("Not saved: " + e.message, true);
    return false;
  }
}
const currentName = () => (S.photos.find((p) => p.index === S.index) || {}).name || "";

async function render() {
  if (S.dirty && !(await save())) return;
  $("download").removeAttribute("href");
  try {
    await json("/api/review/render", { method: "POST" });
  } catch (e) {
    if (e.status !== 409) return say("Render not started: " + e.message, true);
  }
  $("render").disabled = true; $("progress").hidden = false; $("progress").value = 0;
  say("Rendering…");
  poll();
}

async function poll() {
  clearTimeout(S.polling);
  try {
    const job = await json("/api/review/render");
    $("progress").value = job.progress;
    if (job.status === "running") {
      say(`Rendering… ${Math.round(job.progress * 100)}%`);
      S.polling = setTimeout(poll, 400);
      return;
    }
    $("render").disabled = false; $("progress").hidden = true;
    if (job.status === "done") await offerDownload(job);
    else if (job.status === "failed") say("Render failed: " + job.error, true);
  } catch (e) {
    $("render").disabled = false; say(e.message, true);
  }
}

async function offerDownload(job) {
  const path = "/api/review/render/result" + itemQuery(), link = $("download");
  const name = S.kind === "photos" ? currentName().split("/").pop() : S.info.output.split("/").pop();
  link.download = name;
  link.href = token() ? await blobUrl(path) : path;
  say(`Rendered to ${S.info.output} in ${job.seconds ? job.seconds.toFixed(1) : "?"} s.`);
}

// ---- photos grid -----------------------------------------------------------------------------
async function buildGrid() {
  const grid = $("grid");
  grid.hidden = false;
  grid.replaceChildren(...S.photos.map((p) => {
    const b = document.createElement("button"), img = document.createElement("img"), cap = document.createElement("span");
    b.type = "button"; b.className = "thumb" + (p.flags.length ? " flagged" : ""); b.dataset.index = p.index;
    b.title = p.name; img.alt = p.name;
    cap.textContent = `${p.name.split("/").pop()} · ${p.faces} face${p.faces === 1 ? "" : "s"}` + (p.flags.length ? " · " + p.flags.join(", ") : "");
    b.append(img, cap); b.addEventListener("click", () => goto(p.index));
    blobUrl(`/api/review/thumbs/${p.index}.jpg`).then((u) => { img.src = u; }).catch(() => {});
    return b;
  }));
}

// ---- start ---------------------------------------------------------------------------------------
async function start() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) { sessionStorage.setItem("veil-token", hash.get("token")); history.replaceState(null, "", location.pathname); }
  try {
    S.info = await json("/api/review");
  } catch (e) {
    if (e.status === 401) { $("token-row").hidden = false; return say("This server needs its API token: enter it below.", true); }
    return say(e.message, true);
  }
  S.kind = S.info.kind;
  $("name").textContent = S.info.name;
  $("command").textContent = "Same output from the command line: " + S.info.command;
  try {
    const methods = await json("/api/methods");
    $("track-method").append(...methods.anonymizers.map((m) => new Option(m.name, m.name)));
  } catch (e) { /* the select keeps the run's default only */ }
  S.flags = (await json("/api/review/flags")).flags;
  if (S.kind === "photos") {
    S.photos = (await json("/api/review/photos")).photos;
    document.body.classList.add("photos");
    document.querySelector("label[for=frame-no]").textContent = "Photo";
    await buildGrid();
    $("frame-no").max = S.photos.length - 1;
    $("frame-count").textContent = "";
    await goto(S.photos[0].index);
  } else {
    S.timeline = await json("/api/review/timeline");
    S.size = [S.info.width, S.info.height];
    $("frame-no").max = S.info.frames - 1;
    $("frame-count").textContent = `of ${S.info.frames} (${S.info.fps.toFixed(2)} fps)`;
    blobUrl("/api/review/thumbs.jpg").then((u) => { $("thumbs").src = u; $("thumbs").hidden = false; }).catch(() => {});
    await goto(0);
  }
  listFlags();
  $("save").disabled = $("render").disabled = false;
  if (S.info.render.status === "running") poll();
  say("Ready.");
}

function wire() {
  const overlay = $("overlay");
  overlay.addEventListener("pointerdown", pointerDown);
  overlay.addEventListener("pointermove", pointerMove);
  overlay.addEventListener("pointerup", pointerUp);
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("prev-flag").addEventListener("click", () => flagStep(-1));
  $("next-flag").addEventListener("click", () => flagStep(1));
  $("frame-no").addEventListener("change", () => goto(+$("frame-no").value));
  $("remove-track").addEventListener("click", () => removeTrack().catch((e) => say(e.message, true)));
  $("restore-track").addEventListener("click", () => restoreTrack().catch((e) => say(e.message, true)));
  $("track-method").addEventListener("change", () => setMethod().catch((e) => say(e.message, true)));
  $("add-face").addEventListener("click", addFace);
  $("cancel-new").addEventListener("click", () => { S.sel = null; drawOverlay(); showSelection(); });
  $("save").addEventListener("click", save);
  $("render").addEventListener("click", render);
  $("token").addEventListener("change", () => { sessionStorage.setItem("veil-token", $("token").value); $("token-row").hidden = true; start(); });
  let scrub = false;
  $("timeline").addEventListener("pointerdown", (e) => { scrub = true; $("timeline").setPointerCapture(e.pointerId); S.index = timelinePick(e); drawTimeline(); });
  $("timeline").addEventListener("pointermove", (e) => { if (scrub) { S.index = Math.max(0, Math.min(S.info.frames - 1, timelinePick(e))); drawTimeline(); } });
  $("timeline").addEventListener("pointerup", (e) => { if (scrub) { scrub = false; goto(timelinePick(e)); } });
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea")) return;
    if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
    else if (e.key === "n") flagStep(1);
    else if (e.key === "p") flagStep(-1);
    else if ((e.key === "Delete" || e.key === "Backspace") && S.sel && S.sel.type === "face") removeTrack();
    else if (e.key === "Escape") { S.sel = null; drawOverlay(); showSelection(); }
    else if (e.key === "s" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
  });
  window.addEventListener("resize", () => { drawOverlay(); drawTimeline(); });
  window.addEventListener("beforeunload", (e) => { if (S.dirty) e.preventDefault(); });
}

wire();
start();
