// affseg viewer: plain JavaScript over the /api/ endpoints (no external assets).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { id: null, width: 0, height: 0, limits: {}, click: null, panels: {} };

function showMessage(text, kind) {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = false;
}

async function jsonOrError(resp) {
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok && resp.status !== 202) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// ------------------------------------------------------------------ panels
function makePanel(key) {
  const p = {
    key, method: null, levels: [], level: 0, token: 0,
    img: $(`overlay-${key}`), slider: $(`slider-${key}`), count: $(`count-${key}`),
    status: $(`status-${key}`), progress: $(`progress-${key}`), select: $(`method-${key}`),
    marker: document.querySelector(`#panel-${key} .marker`),
    loading: false, wanted: null,
  };
  p.slider.addEventListener("input", () => setLevel(p, levelOfSlider(p)));
  p.select.addEventListener("change", () => { p.method = p.select.value || null; run(p); });
  p.img.addEventListener("click", (ev) => clickPixel(ev, p.img));
  p.img.addEventListener("load", () => {
    p.loading = false;
    if (p.wanted && p.wanted !== p.img.getAttribute("src")) loadInto(p, p.wanted);
  });
  p.img.addEventListener("error", () => { p.loading = false; });
  return p;
}

function levelOfSlider(p) {
  // slider left = coarse (few segments), right = fine
  return p.levels.length - 1 - Number(p.slider.value);
}

function loadInto(p, url) {
  p.wanted = url;
  if (p.loading) return;
  p.loading = true;
  p.img.src = url;
}

function setLevel(p, level) {
  if (!state.id || !p.levels.length) return;
  p.level = level;
  const k = p.levels[level].segments;
  p.count.textContent = `${k} segment${k === 1 ? "" : "s"}`;
  const base = `/api/%s/${state.id}/${p.method}/${level}.png`;
  loadInto(p, base.replace("%s", "overlay"));
  const stem = `${state.id}_${p.method}_${k}`;
  setLink(`dl-labels-${p.key}`, base.replace("%s", "labels"), `${stem}.labels.png`);
  setLink(`dl-overlay-${p.key}`, base.replace("%s", "overlay"), `${stem}.overlay.png`);
  setLink(`dl-ucm-${p.key}`, `/api/ucm/${state.id}/${p.method}.mat`, `${state.id}_${p.method}.mat`);
}

function setLink(id, href, name) {
  const a = $(id);
  if (href) { a.href = href; a.download = name; } else { a.removeAttribute("href"); }
}

function resetPanel(p) {
  p.levels = [];
  p.slider.disabled = true;
  p.slider.max = 0;
  p.count.textContent = "–";
  ["labels", "overlay", "ucm"].forEach((k) => setLink(`dl-${k}-${p.key}`, null));
}

function setProgress(p, info) {
  const bar = p.progress.querySelector(".bar");
  if (!info) { p.progress.hidden = true; return; }
  p.progress.hidden = false;
  if (info.progress !== undefined && info.progress !== null) {
    p.progress.classList.remove("indeterminate");
    bar.style.width = `${Math.round(100 * info.progress)}%`;
  } else {
    p.progress.classList.add("indeterminate");
    bar.style.width = "30%";
  }
}

async function run(p) {
  const token = ++p.token;
  resetPanel(p);
  if (!state.id || !p.method) {
    p.status.textContent = p.method ? "" : "off";
    setProgress(p, null);
    if (!p.method) { p.img.removeAttribute("src"); p.marker.hidden = true; }
    return;
  }
  p.img.src = `/api/image/${state.id}.png`;
  p.status.textContent = `queued (${p.method})`;
  setProgress(p, {});
  const form = new FormData();
  form.append("id", state.id);
  form.append("method", p.method);
  form.append("wait", "0");
  try {
    let info = await jsonOrError(await fetch("/api/segment", { method: "POST", body: form }));
    while (info.status === "queued" || info.status === "running") {
      if (token !== p.token) return;
      const t = info.elapsed !== undefined ? ` ${info.elapsed.toFixed(1)} s` : "";
      const eta = info.eta ? ` of ~${info.eta.toFixed(1)} s` : "";
      p.status.textContent = info.status === "queued"
        ? `queued (${p.method})${t}` : `segmenting with ${p.method}…${t}${eta}`;
      setProgress(p, info);
      await new Promise((r) => setTimeout(r, 300));
      info = await jsonOrError(await fetch(`/api/segment/${state.id}/${p.method}`));
    }
    if (token !== p.token) return;
    setProgress(p, null);
    if (info.status === "error") throw new Error(info.error);
    p.levels = info.levels;
    p.slider.max = p.levels.length - 1;
    p.slider.value = p.levels.length - 1 - info.default_level;
    p.slider.disabled = p.levels.length < 2;
    p.status.textContent = `${p.method}: ${p.levels.length} levels, ${info.seconds.toFixed(2)} s`;
    setLevel(p, info.default_level);
  } catch (err) {
    if (token !== p.token) return;
    setProgress(p, null);
    p.status.textContent = `${p.method}: failed`;
    showMessage(`${p.method}: ${err.message}`);
  }
}

// ------------------------------------------------------------------ similarity
const sim = { img: null, loading: false, wanted: null };

function clickPixel(ev, img) {
  if (!state.id || !img.naturalWidth) return;
  const rect = img.getBoundingClientRect();
  const x = Math.min(state.width - 1, Math.max(0, Math.floor((ev.clientX - rect.left) * state.width / rect.width)));
  const y = Math.min(state.height - 1, Math.max(0, Math.floor((ev.clientY - rect.top) * state.height / rect.height)));
  state.click = { x, y };
  placeMarkers();
  $("sim-caption").textContent = `pixel (row ${y}, col ${x})`;
  const url = `/api/similarity/${state.id}.png?y=${y}&x=${x}`;
  sim.wanted = url;
  if (!sim.loading) { sim.loading = true; $("progress-sim").hidden = false; sim.img.src = url; }
}

function placeMarkers() {
  Object.values(state.panels).forEach((p) => {
    if (!state.click || !p.method) { p.marker.hidden = true; return; }
    p.marker.style.left = `${(100 * (state.click.x + 0.5)) / state.width}%`;
    p.marker.style.top = `${(100 * (state.click.y + 0.5)) / state.height}%`;
    p.marker.hidden = false;
  });
}

// ------------------------------------------------------------------ images
async function startImage(form, label) {
  showMessage(`loading ${label}…`, "info");
  Object.values(state.panels).forEach((p) => { p.token++; resetPanel(p); });
  form.append("method", state.panels.a.method || "slic");
  form.append("wait", "0");
  let info;
  try {
    info = await jsonOrError(await fetch("/api/segment", { method: "POST", body: form }));
  } catch (err) {
    showMessage(`Refused: ${err.message}`);
    Object.values(state.panels).forEach((p) => { p.status.textContent = ""; setProgress(p, null); });
    return;
  }
  showMessage(null);
  state.id = info.id;
  state.width = info.width;
  state.height = info.height;
  state.click = null;
  placeMarkers();
  sim.img.removeAttribute("src");
  $("sim-caption").textContent = "click a pixel of an image";
  if (info.scale < 1) {
    showMessage(`${info.name}: ${info.original_width} × ${info.original_height} shown at ` +
      `${info.width} × ${info.height}`, "info");
  }
  Object.values(state.panels).forEach(run);
}

function uploadFile(file) {
  if (!file) return;
  const max = state.limits.max_upload_bytes;
  if (max && file.size > max) {
    showMessage(`Refused: ${file.name} is ${(file.size / 1e6).toFixed(1)} MB; ` +
      `this server accepts at most ${(max / 1e6).toFixed(1)} MB`);
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  startImage(form, file.name);
}

function loadExample() {
  const form = new FormData();
  form.append("example", $("example").value);
  startImage(form, $("example").value);
}

async function init() {
  sim.img = $("sim");
  sim.img.addEventListener("load", () => {
    sim.loading = false;
    if (sim.wanted && sim.wanted !== sim.img.getAttribute("src")) { sim.loading = true; sim.img.src = sim.wanted; }
    else $("progress-sim").hidden = true;
  });
  sim.img.addEventListener("error", async () => {
    sim.loading = false;
    $("progress-sim").hidden = true;
    let msg = "similarity map failed";
    try {  // the server's one-line reason (a thin strip, a busy server, ...)
      const body = await (await fetch(sim.img.src)).json();
      if (body && body.error) msg = `similarity map: ${body.error}`;
    } catch (err) { /* keep the generic message */ }
    showMessage(msg);
  });
  sim.img.addEventListener("click", (ev) => clickPixel(ev, sim.img));
  $("progress-sim").classList.add("indeterminate");
  state.panels.a = makePanel("a");
  state.panels.b = makePanel("b");
  const info = await jsonOrError(await fetch("/api/info"));
  state.limits = info.limits;
  for (const m of info.methods) {
    $("method-a").add(new Option(m, m));
    $("method-b").add(new Option(m, m));
  }
  $("method-b").add(new Option("— none —", ""), 0);
  $("method-a").value = info.default_method;
  $("method-b").value = "";
  state.panels.a.method = info.default_method;
  state.panels.b.method = null;
  state.panels.b.status.textContent = "off";
  for (const e of info.examples) $("example").add(new Option(e, e));
  $("example").value = info.examples.includes("coffee") ? "coffee" : info.examples[0];
  $("load-example").addEventListener("click", loadExample);
  $("file").addEventListener("change", (ev) => uploadFile(ev.target.files[0]));
  document.addEventListener("dragover", (ev) => { ev.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  document.addEventListener("drop", (ev) => {
    ev.preventDefault();
    document.body.classList.remove("dragging");
    if (ev.dataTransfer.files.length) uploadFile(ev.dataTransfer.files[0]);
  });
  document.body.dataset.ready = "1";
}

init().catch((err) => showMessage(`cannot reach the server: ${err.message}`));
