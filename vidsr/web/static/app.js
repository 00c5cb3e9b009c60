// The vidsr page: everything goes through the same HTTP API that scripts use (README, "Web platform").
"use strict";

const state = { media: new Map(), jobs: new Map(), models: null, selected: new Set() };
const $ = (sel, root = document) => root.querySelector(sel);

async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(url, opts);
  if (r.status === 401) { location.href = "/login"; throw new Error("sign in first"); }
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error((data && data.error) || `HTTP ${r.status}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const size = (n) => { const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`; };
const clock = (s) => { if (s === null || s === undefined) return "–"; s = Math.round(s);
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`; };

// A rough time as a person says it: under a second, 45 s, 12 min, 3 h 10 min.
const roughly = (s) => s < 1 ? "under a second" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min`
  : `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;

function facts(m) {
  const i = m.info || {};
  if (m.kind === "frames") return `${i.frames} frames · ${i.fps ? i.fps + " fps" : ""} · ${size(m.size)}`;
  const parts = [m.kind, size(m.size)];
  if (i.width) parts.push(`${i.width}×${i.height}`);
  if (i.codec) parts.push(i.codec);
  if (m.kind === "video" && i.duration) parts.push(clock(i.duration));
  return parts.join(" · ");
}

// library
function renderLibrary() {
  const root = $("#library");
  root.replaceChildren();
  const items = [...state.media.values()].sort((a, b) => b.created - a.created);
  $("#empty").hidden = items.length > 0;
  for (const m of items) {
    const card = $("#card").content.firstElementChild.cloneNode(true);
    card.dataset.id = m.id;
    card.dataset.testid = "media";
    card.dataset.name = m.name;
    $(".thumb", card).src = m.urls.thumbnail;
    $(".name", card).textContent = m.name;
    $(".facts", card).textContent = facts(m) + (m.source ? ` · from ${state.media.get(m.source)?.name ?? "a deleted file"}` : "");
    const dl = $('[data-act="download"]', card);
    dl.href = m.urls.file;
    dl.setAttribute("download", m.name);
    $('[data-act="play"]', card).hidden = m.kind === "frames";
    $('[data-act="compare"]', card).hidden = !(m.source && state.media.has(m.source) && m.kind !== "frames");
    const pick = $('[data-act="select"]', card);
    pick.checked = state.selected.has(m.id);
    pick.setAttribute("aria-label", `select ${m.name}`);
    pick.addEventListener("change", () => { if (pick.checked) state.selected.add(m.id); else state.selected.delete(m.id); renderSelection(); });
    card.addEventListener("click", (e) => {
      const act = e.target.dataset.act;
      if (act && act !== "download" && act !== "select") { e.preventDefault(); actions[act](m); }
    });
    root.append(card);
  }
  for (const id of [...state.selected]) if (!state.media.has(id)) state.selected.delete(id);
  renderSelection();
}

// several files at once: select cards, then convert them all with one form
function renderSelection() {
  const n = state.selected.size;
  $("#selection").hidden = n === 0;
  $("#selected-count").textContent = `${n} selected`;
}
$("#convert-selected").addEventListener("click", async () => {
  const items = [...state.selected].map((id) => state.media.get(id)).filter(Boolean);
  const kinds = new Set(items.map((i) => i.kind));
  if (kinds.size > 1) { alert(`Select files of one kind to convert together (now: ${[...kinds].join(" and ")}).`); return; }
  openDialog(`Convert ${items.length} files`, await convertForm(items));
});
$("#clear-selection").addEventListener("click", () => { state.selected.clear(); renderLibrary(); });

const actions = {
  play(m) {
    const body = m.kind === "image" || m.info.codec === "gif"
      ? el("img", { class: "full", src: m.urls.play, alt: m.name })
      : el("video", { src: m.urls.play, controls: true, autoplay: true, "data-testid": "player" });
    if (body.tagName === "VIDEO") body.addEventListener("error", () => {
      body.replaceWith(el("p", { class: "error" }, "This file cannot play yet: its browser copy is still being made (see Jobs)."));
    });
    openDialog(`Play: ${m.name}`, body);
  },
  info(m) {
    const i = m.info, rows = [["name", m.name], ["kind", m.kind], ["size", size(m.size)], ["container", i.format_long || i.format],
      ["duration", i.duration ? `${i.duration.toFixed(3)} s` : "–"], ["resolution", i.width ? `${i.width}×${i.height}` : "–"],
      ["frame rate", i.fps ? `${i.fps} fps` : "–"], ["codec", i.codec], ["pixel format", i.pix_fmt],
      ["colour", Object.entries(i.colour || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "untagged"]];
    const table = el("table", { class: "info" }, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v ?? "–")))));
    const streams = el("table", { class: "info" }, el("tr", {}, ...["#", "type", "codec", "details", "language"].map((h) => el("th", {}, h))),
      ...(i.streams || []).map((s) => el("tr", {}, el("td", {}, String(s.index)), el("td", {}, s.type), el("td", {}, s.codec || "–"),
        el("td", {}, s.type === "video" ? `${s.width}×${s.height} ${s.pix_fmt} ${s.fps ?? ""} fps` :
          s.type === "audio" ? `${s.sample_rate} Hz ${s.layout || s.channels + " ch"}` : ""), el("td", {}, s.language || ""))));
    openDialog(`Info: ${m.name}`, el("div", { "data-testid": "info" }, table, el("h4", {}, "Streams"), streams));
  },
  async convert(m) { openDialog(`Convert: ${m.name}`, await convertForm([m])); },
  compare(m) { openDialog(`Compare: ${m.name}`, compareView(m)); },
  async delete(m) {
    if (!confirm(`Delete ${m.name}? Its file is removed from the server.`)) return;
    try { await api("DELETE", `/api/media/${m.id}`); state.media.delete(m.id); renderLibrary(); }
    catch (e) { alert(e.message); }
  },
};

function openDialog(title, body) {
  $("#dialog-title").textContent = title;
  $("#dialog-body").replaceChildren(body);
  const d = $("#dialog");
  if (!d.open) d.showModal();
}
$("#dialog").addEventListener("close", () => $("#dialog-body").replaceChildren());

// convert: upscale, cut, extract, merge; one file, or every selected file of one kind with the same settings
async function convertForm(items) {
  const m = items[0];
  if (!state.models) state.models = await api("GET", "/api/models").catch(() => ({ engines: [], auto: {} }));
  const choices = m.kind === "frames" ? ["merge"] : m.kind === "image" ? ["upscale"] : ["upscale", "cut", "extract"];
  const labels = { upscale: "Upscale", cut: "Cut", extract: "Extract frames", merge: "Merge frames into a video" };
  const action = el("select", { name: "action", "data-testid": "action" }, ...choices.map((c) => el("option", { value: c }, labels[c])));
  const fields = el("div", { class: "form wide" });
  const message = el("p", { class: "error wide" });
  const plan = el("p", { class: "plan wide muted", "data-testid": "plan" });
  const many = items.length > 1 ? el("p", { class: "wide" }, `${items.length} files, the same settings for each: ${items.map((i) => i.name).join(", ")}`) : null;
  const form = el("form", { class: "form", "data-testid": "convert-form" }, many, el("label", {}, "Action"), action, fields, plan, message,
    el("button", { type: "submit", class: "primary wide", "data-testid": "start" }, items.length > 1 ? `Start ${items.length} jobs` : "Start"));
  const hasSubtitles = items.some((i) => (i.info.streams || []).some((s) => s.type === "subtitle"));
  const families = [...new Set(state.models.engines.map((e) => e.family))];
  const input = (name, attrs = {}) => el("input", { name, ...attrs });
  const select = (name, values, selected) => el("select", { name }, ...values.map(([v, t]) => el("option", { value: v, selected: v === selected }, t)));
  const layouts = {
    upscale: () => [["Model", select("model", [["auto", "auto (best measured)"], ...families.map((f) => [f, f]),
        ...state.models.engines.filter((e) => !families.includes(e.id)).map((e) => [e.id, e.id])], "auto")],
      ["Speed", select("quality", [["best", "best quality (auto's best-measured engine)"], ["balanced", "balanced (the 16-block engines)"], ["fast", "fast (a tenth of the cost: batches of footage)"]], "best")],
      ["Scale", select("scale", [["2", "×2"], ["3", "×3"], ["4", "×4"]], "2")],
      ["Input kind", select("degradation", [["auto", "auto (measured)"], ["clean", "clean source"], ["real", "compressed"], ["heavy", "heavily compressed / noisy (CCTV)"]], "auto")],
      ["Runtime", select("runtime", [["auto", "auto"], ["torch", "torch"], ["onnx", "ONNX Runtime"]], "auto")],
      ["Self-ensemble", el("label", {}, input("ensemble", { type: "checkbox" }), " 8 flips and turns: a little better, 8× slower")],
      ...(m.kind === "video" ? [["Codec", select("codec", [["", "default (H.264; HEVC for 10-bit or HDR sources; NVENC on a GPU)"], ["libx264", "H.264"], ["libx265", "HEVC"], ["ffv1", "FFV1 (lossless, MKV)"], ["h264_nvenc", "H.264 NVENC (NVIDIA GPU)"], ["hevc_nvenc", "HEVC NVENC (NVIDIA GPU)"]], "")],
        ["Temporal filter", select("temporal_filter", [["auto", "auto (on for compressed / noisy input)"], ["on", "on"], ["off", "off (the network alone)"]], "auto")],
        ["Quality (CRF)", input("crf", { type: "number", min: 0, max: 51, value: 18 })],
        ["Container", select("format", [["mp4", "MP4 (plays in the browser)"], ["mkv", "MKV"]], "mp4")],
        ...(hasSubtitles ? [["Subtitles", select("no_subtitles", [["", "keep (MP4 takes text subtitles as MP4 text)"], ["yes", "leave out"]], "")]] : []),
        ["Start (s)", input("start", { type: "number", min: 0, step: "any", placeholder: "0" })],
        ["Length (s)", input("duration", { type: "number", min: 0, step: "any", placeholder: "all" })]] : [])],
    cut: () => [["Start (s)", input("start", { type: "number", min: 0, step: "any", value: 0 })],
      ["Length (s)", input("duration", { type: "number", min: 0.01, step: "any", value: 30 })]],
    extract: () => [["Every Nth frame", input("every", { type: "number", min: 1, value: 1 })]],
    merge: () => [["Frame rate", input("fps", { type: "number", min: 0.1, step: "any", value: m.info.fps || 25 })],
      ["Source's audio", input("audio", { type: "checkbox", checked: true })]],
  };
  // The form remembers what was last asked for each action (this browser only), except where a clip starts and ends.
  const remembered = (a) => { try { return JSON.parse(localStorage.getItem(`vidsr.form.${a}`) || "{}"); } catch { return {}; } };
  const restore = () => {
    const saved = remembered(action.value);
    for (const node of fields.querySelectorAll("input, select")) {
      if (!(node.name in saved) || ["start", "duration"].includes(node.name)) continue;
      if (node.name === "no_subtitles") node.value = saved.no_subtitles ? "yes" : "";
      else if (node.type === "checkbox") node.checked = Boolean(saved[node.name]);
      else if (node.tagName !== "SELECT" || [...node.options].some((o) => o.value === String(saved[node.name]))) node.value = saved[node.name];
    }
  };
  const draw = () => { fields.replaceChildren(...layouts[action.value]().flatMap(([label, node]) => [el("label", {}, label), node])); restore(); };
  action.addEventListener("change", draw);
  // FFV1 goes in MKV: choosing it picks the MKV container (it was written into .mp4).
  fields.addEventListener("change", (e) => {
    if (e.target.name === "codec" && e.target.value === "ffv1") form.querySelector("select[name=format]").value = "mkv";
  });
  const request = (media) => {
    const body = { media: media.id, action: action.value };
    for (const node of fields.querySelectorAll("input, select")) {
      if (node.name === "no_subtitles") body.no_subtitles = node.value === "yes";
      else if (node.type === "checkbox") body[node.name] = node.checked;
      else if (node.value !== "") body[node.name] = node.type === "number" || node.name === "scale" ? Number(node.value) : node.value;
    }
    return body;
  };
  // Before a job starts: which engine auto runs and about how long it takes here (the server measures once).
  let asked = 0;
  const estimate = async () => {
    const ticket = ++asked;
    message.textContent = "";
    if (action.value !== "upscale") { plan.textContent = ""; return; }
    plan.textContent = "Estimating…";
    try {
      const plans = await Promise.all(items.map((i) => api("POST", "/api/plan", request(i))));
      if (ticket !== asked) return;
      const p = plans[0], total = plans.reduce((sum, x) => sum + (x.seconds || 0), 0);
      const engines = [...new Set(plans.map((x) => x.engine))].join(", ");
      plan.textContent = `Runs ${engines} on ${p.runtime}/${p.precision}: ${p.reason}` + (p.input ? `; input ${p.input}` : "") +
        `. ${plans.reduce((sum, x) => sum + (x.frames || 0), 0)} frames → ${p.width}×${p.height}, about ${roughly(total)} ` +
        `(${p.fps < 10 ? p.fps.toFixed(2) : Math.round(p.fps)} fps, ${p.source}).`;
    } catch (err) { if (ticket === asked) { plan.textContent = ""; message.textContent = err.message; } }
  };
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(estimate, 400); };
  fields.addEventListener("change", later);
  action.addEventListener("change", later);
  draw();
  estimate();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const failed = [];
    for (const media of items) {
      try {
        const job = await api("POST", "/api/jobs", request(media));
        localStorage.setItem(`vidsr.form.${action.value}`, JSON.stringify(request(media)));
        state.jobs.set(job.id, job);
      } catch (err) { failed.push(items.length > 1 ? `${media.name}: ${err.message}` : err.message); }
    }
    renderJobs();
    if (failed.length) message.textContent = failed.join("; "); else $("#dialog").close();
  });
  return form;
}

// before / after
function compareView(m) {
  const source = state.media.get(m.source);
  const offset = (m.info && m.info.offset) || 0;
  const before = el("img", { alt: "source" }), after = el("img", { class: "after", alt: "result" });
  const divider = el("div", { class: "divider" });
  const box = el("div", { class: "compare", "data-testid": "compare" }, before, after, divider,
    el("span", { class: "label left" }, `source (${source.info.width}×${source.info.height}, scaled by the browser)`),
    el("span", { class: "label right" }, `result (${m.info.width}×${m.info.height})`));
  // Zoom: fit the dialog, or the result's own pixels at 1, 2 or 4 screen pixels each, scrolled inside a frame.
  const frame = el("div", { class: "compare-frame" }, box);
  const zoom = el("select", { "aria-label": "zoom", "data-testid": "zoom" }, ...[["fit", "fit"], ["1", "100%"], ["2", "200%"], ["4", "400%"]].map(([v, t]) => el("option", { value: v }, t)));
  zoom.addEventListener("change", () => {
    const z = Number(zoom.value);
    box.style.width = z ? `${m.info.width * z / devicePixelRatio}px` : "";
    box.style.maxWidth = z ? "none" : "";
    box.classList.toggle("pixels", z > 1);
  });
  const split = el("input", { type: "range", min: 0, max: 100, value: 50, "aria-label": "split" });
  split.addEventListener("input", () => { after.style.clipPath = `inset(0 0 0 ${split.value}%)`; divider.style.left = `${split.value}%`; });
  const at = el("input", { type: "number", min: 0, step: "any", value: Math.min(1, (m.info.duration || 0) / 2).toFixed(2), "aria-label": "time" });
  const load = () => {
    const t = Number(at.value) || 0;
    before.src = `/api/media/${source.id}/frame?t=${t + offset}`;
    after.src = `/api/media/${m.id}/frame?t=${t}`;
  };
  at.addEventListener("change", load);
  load();
  const controls = el("div", { class: "compare-controls" }, m.kind === "video" ? el("label", {}, "Frame at (s) ", at) : null,
    el("label", {}, "Zoom ", zoom), el("label", {}, "Split "), split);
  return el("div", {}, controls, frame);
}

// jobs
function renderJobs() {
  const body = $("#jobs tbody");
  body.replaceChildren();
  const jobs = [...state.jobs.values()].sort((a, b) => b.created - a.created);
  $("#no-jobs").hidden = jobs.length > 0;
  $("#jobs").hidden = jobs.length === 0;
  for (const j of jobs) {
    const media = state.media.get(j.media);
    const o = j.options || {};
    const what = j.action === "upscale" ? `upscale ×${o.scale} (${o.model || "auto"})` : j.action === "cut" ? `cut ${o.start}s +${o.duration}s`
      : j.action === "extract" ? `extract every ${o.every}` : j.action === "proxy" ? "browser copy" : `merge at ${o.fps} fps`;
    const result = j.result && state.media.get(j.result);
    const cells = [
      el("td", {}, what),
      el("td", {}, media ? media.name : "(deleted)"),
      el("td", { class: `state-${j.state}`, "data-testid": "job-state" }, j.state, j.error ? el("div", { class: "error" }, j.error) : null,
        j.note && j.state === "queued" ? el("div", { class: "muted" }, j.note) : null),
      el("td", {}, el("progress", { max: 1, value: j.progress })),
      el("td", {}, j.frames ? `${j.frame}/${j.frames}` : j.frame ? String(j.frame) : "–"),
      el("td", {}, j.fps ? j.fps.toFixed(1) : "–"),
      el("td", {}, j.state === "running" ? clock(j.eta) : "–"),
      el("td", {}, ["queued", "running"].includes(j.state)
        ? el("button", { onclick: async () => { try { state.jobs.set(j.id, await api("DELETE", `/api/jobs/${j.id}`)); renderJobs(); } catch (e) { alert(e.message); } } }, "Cancel")
        : result && j.action !== "proxy" ? el("button", { onclick: () => actions[result.kind === "frames" ? "info" : "play"](result) }, result.kind === "frames" ? "Result" : "Play result") : null),
    ];
    body.append(el("tr", { "data-job": j.id, "data-testid": "job" }, ...cells));
  }
}

// uploads: one request per file, each with its own progress bar and cancel button
function upload(file) {
  const bar = el("progress", { max: 1, value: 0 });
  const status = el("span", { class: "status" }, "0%");
  const xhr = new XMLHttpRequest();
  const cancel = el("button", { onclick: () => xhr.abort() }, "Cancel");
  const row = el("li", { "data-testid": "upload" }, el("span", {}, file.name), bar, status, cancel);
  $("#uploads").prepend(row);
  const end = (cls, text) => { row.className = cls; status.textContent = text; cancel.remove(); };
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) { bar.value = e.loaded / e.total; status.textContent = `${Math.round(100 * e.loaded / e.total)}% of ${size(e.total)}`; }
  });
  xhr.upload.addEventListener("load", () => { status.textContent = "checking…"; });
  xhr.addEventListener("load", () => {
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 201) { state.media.set(data.id, data); renderLibrary(); bar.value = 1; end("done", "added"); }
    else end("failed", data.error || `failed (HTTP ${xhr.status})`);
  });
  xhr.addEventListener("error", () => end("failed", "the connection broke"));
  xhr.addEventListener("abort", () => end("failed", "cancelled"));
  xhr.open("POST", "/api/media");
  const form = new FormData();
  form.append("file", file);
  xhr.send(form);
}

const drop = $("#drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => [...e.dataTransfer.files].forEach(upload));
$("#clear-jobs").addEventListener("click", async () => {
  try { for (const id of (await api("DELETE", "/api/jobs")).cleared) state.jobs.delete(id); renderJobs(); }
  catch (e) { alert(e.message); }
});
$("#picker").addEventListener("change", (e) => { [...e.target.files].forEach(upload); e.target.value = ""; });

// live updates
async function refresh() {
  const [media, jobs] = await Promise.all([api("GET", "/api/media"), api("GET", "/api/jobs")]);
  state.media = new Map(media.map((m) => [m.id, m]));
  state.jobs = new Map(jobs.map((j) => [j.id, j]));
  renderLibrary();
  renderJobs();
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { $("#live").textContent = "live"; $("#live").classList.add("on"); refresh(); });
  source.addEventListener("job", (e) => { const { job } = JSON.parse(e.data); state.jobs.set(job.id, job); renderJobs(); });
  source.addEventListener("cleared", (e) => { for (const id of JSON.parse(e.data).jobs) state.jobs.delete(id); renderJobs(); });
  source.addEventListener("media", (e) => {
    const d = JSON.parse(e.data);
    if (d.deleted) state.media.delete(d.deleted); else state.media.set(d.media.id, d.media);
    renderLibrary(); renderJobs();
  });
  source.addEventListener("error", () => { $("#live").textContent = "reconnecting…"; $("#live").classList.remove("on"); });
}

refresh().catch((e) => { $("#live").textContent = e.message; });
listen();
