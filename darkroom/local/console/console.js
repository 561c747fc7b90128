// The local console. Every value from the cloud is set as text (textContent), never
// as markup: a file name or an error's cause is shown, not run.
"use strict";

const API = "/console/api";
const SVG = "http://www.w3.org/2000/svg";
const BOX = { width: 220, height: 26, gap: 14, indent: 24, margin: 4, lane: 11, step: 14 };
let current = null; // the open execution's ARN
let timer = null;
let selectedState = null;
let lastStates = [];
let lastEdges = [];

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(API + path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hourCycle: "h23" }) : "";
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }));
}

function badge(status) {
  return el("span", status, "badge " + String(status).toLowerCase());
}

// -- the executions list -------------------------------------------------------------
async function loadExecutions() {
  const status = $("status-filter").value;
  const data = await call("/executions" + (status ? "?status=" + encodeURIComponent(status) : ""));
  const tbody = $("executions").tBodies[0];
  tbody.replaceChildren(...data.executions.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.arn = e.executionArn;
    tr.dataset.status = e.status;
    if (e.executionArn === current) tr.className = "selected";
    const name = el("td");
    const link = el("a", e.name);
    link.href = "#" + encodeURIComponent(e.executionArn);
    name.append(link);
    const status = el("td");
    status.append(badge(e.status));
    tr.append(name, status, el("td", when(e.startDate)));
    return tr;
  }));
}

// -- one execution ---------------------------------------------------------------------
async function loadExecution() {
  if (!current) return;
  const data = await call("/execution?arn=" + encodeURIComponent(current));
  const e = data.execution;
  $("placeholder").hidden = true;
  $("detail").hidden = false;
  $("exec-name").textContent = e.name;
  const status = $("exec-status");
  status.textContent = e.status;
  status.className = "badge " + e.status.toLowerCase();
  $("exec-times").textContent = "started " + when(e.startDate) + (e.stopDate ? ", ended " + when(e.stopDate) : "");
  const failed = $("exec-error");
  failed.textContent = e.error ? e.error + ": " + (e.cause || "") : "";
  failed.hidden = !e.error;
  $("stop-box").hidden = e.status !== "RUNNING";
  drawGraph(data.states, data.edges);
  showState();
  showJob(data.job);
  fillRows($("events").tBodies[0], data.events.map((ev) =>
    [ev.id, ev.type, ev.state || "", when(ev.timestamp), ev.error ? ev.error + ": " + (ev.cause || "") : ""]));
  return data;
}

function svgNode(tag, attributes, cls) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (cls) node.setAttribute("class", cls);
  return node;
}

// One arrowhead per kind of edge: a marker takes its colour from its own path.
function arrowheads() {
  const defs = svgNode("defs", {});
  for (const kind of ["next", "catch", "taken"]) {
    const marker = svgNode("marker", {
      id: "arrow-" + kind, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    }, "arrow " + kind);
    marker.append(svgNode("path", { d: "M0,1 L10,5 L0,9 z" }));
    defs.append(marker);
  }
  return defs;
}

// The states one per row in definition order (a Map's own indented under it); an edge
// to the row just below is a short arrow down, any other runs on its rail right of the
// boxes (graph.edges gives each its lane), leaving and entering boxes at their right side.
function drawGraph(states, edges) {
  lastStates = states;
  lastEdges = edges || [];
  const rowOf = new Map(states.map((s, i) => [s.name, i]));
  const top = (i) => BOX.margin + i * (BOX.height + BOX.gap);
  const left = (s) => BOX.margin + s.depth * BOX.indent;
  const right = BOX.margin + BOX.width;
  const lanes = Math.max(0, ...lastEdges.map((e) => e.lane));
  const svg = svgNode("svg", {
    width: right + (lanes + 1) * BOX.lane + BOX.margin,
    height: states.length * (BOX.height + BOX.gap) + BOX.margin,
    role: "img",
  });
  svg.append(arrowheads());
  const lines = svgNode("g", {}, "edges");
  for (const e of lastEdges) {
    const i = rowOf.get(e.source), j = rowOf.get(e.target);
    if (i === undefined || j === undefined) continue;
    const from = states[i], to = states[j];
    // Taken: the execution entered both ends (what a reader follows to see its path).
    const taken = from.status !== "not-reached" && to.status !== "not-reached";
    let d;
    if (e.lane === 0) {
      const x = Math.max(left(from), left(to)) + BOX.step;
      d = `M${x},${top(i) + BOX.height} V${top(j) - 1}`;
    } else {
      const rail = right + e.lane * BOX.lane;
      const out = top(i) + BOX.height / 2 + 4, into = top(j) + BOX.height / 2 - 4;
      d = `M${right},${out} H${rail} V${into} H${right + 1}`;
    }
    const kind = taken ? "taken" : e.kind === "catch" ? "catch" : "next";
    const path = svgNode("path", { d, "marker-end": `url(#arrow-${kind})` },
      "edge " + e.kind + (taken ? " taken" : ""));
    path.dataset.source = e.source;
    path.dataset.target = e.target;
    const title = svgNode("title", {});
    title.textContent = e.source + " \u2192 " + e.target + (e.kind === "catch" ? " (on error)" : "");
    path.append(title);
    lines.append(path);
  }
  svg.append(lines);
  states.forEach((s, i) => {
    const g = svgNode("g", {}, "state " + s.status);
    g.dataset.state = s.name;
    g.dataset.status = s.status;
    const x = left(s), y = top(i);
    const rect = svgNode("rect", { x, y, width: right - x, height: BOX.height, rx: 4 });
    const label = svgNode("text", { x: x + 8, y: y + BOX.height / 2 + 4 });
    label.textContent = s.name + (s.entered > 1 ? " \u00d7" + s.entered : "");
    const title = svgNode("title", {});
    title.textContent = s.type + " \u2192 " + (s.next.join(", ") || "end");
    if (s.name === selectedState) g.classList.add("selected");
    g.append(title, rect, label);
    g.addEventListener("click", () => { selectedState = s.name; drawGraph(lastStates, lastEdges); showState(); });
    svg.append(g);
  });
  $("graph").replaceChildren(svg);
}

function showState() {
  const s = lastStates.find((x) => x.name === selectedState);
  $("state-name").textContent = s ? s.name + " (" + s.status + ")" : "(click one)";
  for (const key of ["input", "output", "error", "cause"]) {
    $("state-" + key).textContent = s ? pretty(s[key]) : "";
  }
}

function pretty(text) {
  if (text === null || text === undefined) return "";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return String(text); }
}

function showJob(job) {
  $("job-title").textContent = job ? job.job_id : "(none)";
  $("job-summary").textContent = job
    ? job.status + ": " + job.files_done + " done, " + job.files_failed + " failed, " +
      job.files_skipped + " skipped of " + job.files_total
    : "";
  fillRows($("files").tBodies[0], (job ? job.files : []).map((f) =>
    [f.name, f.status + (f.error ? " (" + f.error + ")" : ""), f.shard,
     f.develop_seconds === null ? "" : f.develop_seconds.toFixed(2)]));
}

async function openExecution(arn) {
  current = arn;
  selectedState = null;
  const data = await loadExecution();
  if (data) $("start-input").value = data.reprocess_input;
  await loadExecutions();
}

// -- start, stop -------------------------------------------------------------------------
async function startExecution() {
  const started = await call("/start", { input: $("start-input").value });
  $("start-result").textContent = "started " + started.executionArn.split(":").pop();
  location.hash = encodeURIComponent(started.executionArn);
}

async function stopExecution() {
  if (!current) return;
  await call("/stop", { arn: current, cause: $("stop-cause").value });
  await refresh();
}

// -- the worker pool: its instances as EC2 lists them, each with its lease ------------------
function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

async function loadPool() {
  const data = await call("/pool");
  const live = data.instances.filter((i) => i.state !== "terminated" && i.state !== "shutting-down");
  $("pool-summary").textContent = live.length + " live, " + data.waiting + " shard(s) waiting";
  fillRows($("pool").tBodies[0], data.instances.map((i) => {
    const state = el("td");
    state.append(badge(i.state));
    const lease = el("td");
    if (i.lease) lease.append(badge(i.lease));
    const job = i.job_id ? i.job_id + (i.shard === null ? "" : " #" + i.shard) : "";
    return [i.instance_id, state, lease, job, age(i.age_seconds), i.scaled ? "launched" : "declared"];
  }));
}

// -- the thumbnail function and every log ---------------------------------------------------
async function loadInvocations() {
  const data = await call("/invocations");
  fillRows($("invocations").tBodies[0], data.invocations.map((i) =>
    [i.request_id.slice(0, 8), i.duration_ms === null ? "" : i.duration_ms.toFixed(0),
     i.max_memory_mb === null ? "" : i.max_memory_mb,
     i.status || (i.finished ? (i.errors ? "errors" : "ok") : "running"), i.key || "", i.last_message]));
}

async function loadStreams() {
  const select = $("log-stream");
  const chosen = select.value;
  const data = await call("/logs");
  select.replaceChildren(...data.streams.map((s) => { const o = el("option", s); o.value = s; return o; }));
  if (data.streams.includes(chosen)) select.value = chosen;
}

async function loadLog() {
  const stream = $("log-stream").value;
  if (!stream) return;
  const box = $("log-text");
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.textContent = (await call("/log?stream=" + encodeURIComponent(stream))).text;
  if (atEnd) box.scrollTop = box.scrollHeight;
}

// -- wiring ---------------------------------------------------------------------------------
async function guarded(work) {
  try { await work(); showError(""); } catch (err) { showError(err.message); }
}

async function refresh() {
  await loadExecutions();
  if (current) await loadExecution();
  await loadPool();
  await loadInvocations();
  // A function's log appears with its first invocation.
  await loadStreams();
  await loadLog();
}

function route() {
  const arn = decodeURIComponent(location.hash.slice(1));
  if (arn && arn !== current) guarded(() => openExecution(arn));
}

async function init() {
  const machine = await call("/state-machine");
  $("machine").textContent = machine.name + " \u2014 " + machine.arn;
  await refresh();
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("status-filter").addEventListener("change", () => guarded(loadExecutions));
  $("start-button").addEventListener("click", () => guarded(startExecution));
  $("stop-button").addEventListener("click", () => guarded(stopExecution));
  $("log-stream").addEventListener("change", () => guarded(loadLog));
  window.addEventListener("hashchange", route);
  guarded(init);
  // Polling, as the AWS console does: the cloud pushes nothing.
  timer = setInterval(() => guarded(refresh), 1500);
});
