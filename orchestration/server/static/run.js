// The live run page. No build step, no dependencies.
// Every piece of text from a run (LLM output, task, titles, errors) is inserted with
// textContent / text nodes, never as HTML; the synthesis is formatted by markdown.js,
// which builds elements the same way.
"use strict";

const EVENT_TYPES = [
  "workflow_start", "workflow_complete", "workflow_error", "workflow_cancelled",
  "decomposition_start", "decomposition_complete", "agent_start", "agent_progress",
  "agent_complete", "agent_error", "agent_skipped", "agent_retry", "model_call_start",
  "model_retry", "model_fallback", "token_delta", "cost_update", "budget_exceeded",
  "synthesis_start", "synthesis_complete", "iteration_start", "iteration_complete",
  "branch_selected", "document_generation_start", "document_generation_complete",
  "document_error", "callback_error", "warning", "workflow_paused",
  // graph runs (graph.run, workflows): the graph as it changes, node by node
  "graph_node_added", "graph_node_edited", "graph_node_removed", "graph_edge_added",
  "graph_edge_removed", "graph_node_split", "graph_rework_inserted", "graph_node_ready",
  "graph_node_started", "graph_node_completed", "graph_node_failed", "graph_node_skipped",
  "graph_node_cancelled", "graph_node_requeued", "graph_route_chosen",
  "graph_node_interrupted", "graph_interrupt_answered", "graph_run_resumed", "workflow_resumed",
];
const TERMINAL = new Set(["workflow_complete", "workflow_error", "workflow_cancelled", "workflow_paused"]);
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child); // strings become text nodes
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

// Enough decimals for three significant digits: a non-zero cost never reads $0.0000.
function money(v) {
  const n = Number(v || 0);
  if (!Number.isFinite(n) || n === 0) return "$0.00";
  const size = Math.abs(n);
  const digits = size >= 0.01 ? 4 : Math.min(20, Math.ceil(-Math.log10(size)) + 2);
  return (n < 0 ? "-$" : "$") + size.toFixed(digits);
}

// Writes carry the page's CSRF token (the cookie alone is not enough, see docs/server.md).
function post(url, body) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": meta ? meta.content : "" },
    body: JSON.stringify(body || {}),
  });
}
const short = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

const state = {
  runId: null, lastSeq: 0, source: null, title: "", status: "pending", progress: 0,
  tokens: 0, cost: 0, startedAt: null, endedAt: null, phase: "",
  nodes: new Map(), agents: new Map(), agentKeys: new Map(), synthesisText: "", levels: [], frame: 0,
  taken: new Set(), questions: new Map(),
  reportsPending: false, reports: [], reportErrors: [], // reports follow the run's final event
};

// ---- the run list -----------------------------------------------------------------

async function showRuns() {
  $("runs-view").hidden = false;
  const response = await fetch("/runs?limit=50");
  if (!response.ok) return;
  const { runs } = await response.json();
  const body = $("runs-table").querySelector("tbody");
  body.replaceChildren();
  for (const run of runs) {
    const link = el("a", { href: "?run=" + encodeURIComponent(run.run_id) }, run.run_id);
    const updated = run.updated_at ? new Date(run.updated_at * 1000).toLocaleString() : "";
    body.append(el("tr", {},
      el("td", {}, link), el("td", {}, short(run.title || run.task || "", 80)),
      el("td", {}, el("span", { class: "badge " + run.status }, run.status)),
      el("td", { class: "num" }, money(run.total_cost)), el("td", {}, updated)));
  }
  $("no-runs").hidden = runs.length > 0;
}

async function startRun(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { pattern: form.get("pattern"), task: form.get("task"), provider: form.get("provider") };
  if (form.get("model")) body.model = form.get("model");
  const response = await post("/runs", body);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) { $("start-error").textContent = answer.error || "could not start"; return; }
  location.search = "?run=" + encodeURIComponent(answer.run_id);
}

// ---- one run -----------------------------------------------------------------------

function connect() {
  const url = "/runs/" + encodeURIComponent(state.runId) + "/events";
  const source = new EventSource(url); // the cookie carries the token; Last-Event-ID on reconnect
  state.source = source;
  source.onopen = () => setConnection(isWaiting() ? WAITING : "live");
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setConnection(isWaiting() ? WAITING : TERMINAL.has(state.status) || isOver() ? "finished" : "disconnected");
      if (!isDone() && !state.missing) setTimeout(reconnectFromLastSeq, 3000);
    } else {
      // A paused run's stream ends at its pause; the browser reconnects at once and the
      // server follows the run from there, so an answer or a resume elsewhere shows up.
      setConnection(isWaiting() ? WAITING : "reconnecting…");
    }
  };
  const handler = (message) => handle(JSON.parse(message.data));
  for (const type of EVENT_TYPES) source.addEventListener(type, handler);
  source.addEventListener("message", handler);
}

function reconnectFromLastSeq() {
  // A closed EventSource (e.g. the server restarted and refused once) is reopened by hand;
  // the query parameter replays exactly what this page has not seen.
  if (isDone() || (state.source && state.source.readyState !== EventSource.CLOSED)) return;
  const url = "/runs/" + encodeURIComponent(state.runId) + "/events?last_event_id=" + state.lastSeq;
  const source = new EventSource(url);
  state.source = source;
  source.onopen = () => setConnection(isWaiting() ? WAITING : "live");
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && !isDone()) setTimeout(reconnectFromLastSeq, 3000);
  };
  const handler = (message) => handle(JSON.parse(message.data));
  for (const type of EVENT_TYPES) source.addEventListener(type, handler);
}

const isOver = () => ["completed", "failed", "partial", "cancelled", "budget_exceeded", "paused"].includes(state.status);
// A paused run waits for answers: it goes on when resumed, here or in another process.
const isWaiting = () => state.status === "paused";
const WAITING = "paused: waiting for answers";
// Over, and no more events to come (the report listing follows the final event; a
// paused run's events go on once it is resumed).
const isDone = () => isOver() && !state.reportsPending && !isWaiting();

function setConnection(text) { $("connection").textContent = text; }

function handle(event) {
  if (event.seq <= state.lastSeq) return; // already shown (replay overlap)
  state.lastSeq = event.seq;
  const data = event.data || {};
  const type = event.event_type;
  state.progress = Math.max(state.progress, event.progress || 0);
  logEvent(event);
  switch (type) {
    case "workflow_start":
      state.title = data.title || data.task || state.runId;
      state.startedAt = event.timestamp;
      setStatus("in_progress");
      if (Array.isArray(data.nodes)) { // a graph run: its planned graph
        for (const spec of data.nodes) graphNode(spec, false);
        for (const edge of data.edges || []) graphEdge(edge);
        drawGraph();
      }
      break;
    case "graph_node_added": case "graph_rework_inserted":
      graphNode(data.node, true);
      for (const edge of data.edges || []) graphEdge(edge);
      if (type === "graph_rework_inserted") { // source -> fix -> consumer
        graphEdge({ source: data.source, target: data.node.id });
        const consumer = state.nodes.get(data.consumer);
        if (consumer) consumer.deps = consumer.deps.filter((d) => d !== data.source).concat([data.node.id]);
      }
      drawGraph();
      break;
    case "graph_node_edited":
      graphNode(data.node, false);
      drawGraph();
      break;
    case "graph_node_removed":
      for (const id of data.nodes || []) state.nodes.delete(id);
      for (const node of state.nodes.values()) node.deps = node.deps.filter((d) => state.nodes.has(d));
      drawGraph();
      break;
    case "graph_edge_added":
      graphEdge(data.edge || {});
      drawGraph();
      break;
    case "graph_edge_removed": {
      const target = state.nodes.get(data.target);
      if (target) target.deps = target.deps.filter((d) => d !== data.source);
      drawGraph();
      break;
    }
    case "graph_node_split": {
      const old = state.nodes.get(data.node);
      const deps = old ? old.deps : [];
      state.nodes.delete(data.node);
      for (const part of data.parts || []) graphNode(part, true).deps = [...deps];
      const join = graphNode(data.join, true);
      join.deps = (data.parts || []).map((part) => part.id);
      for (const node of state.nodes.values()) node.deps = node.deps.map((d) => (d === data.node ? join.id : d));
      drawGraph();
      break;
    }
    case "graph_node_ready": setNode(data.node, "ready"); break;
    case "graph_node_started": case "graph_node_requeued":
      setNode(data.node, type === "graph_node_started" ? "running" : "ready");
      break;
    case "graph_node_completed": {
      setNode(data.node, "completed");
      const node = state.nodes.get(data.node);
      if (node) { node.visits = Math.max(node.visits || 0, data.visit || 1); drawGraph(); }
      break;
    }
    case "graph_node_failed": setNode(data.node, "failed"); break;
    case "graph_node_skipped": case "graph_node_cancelled": setNode(data.node, "skipped"); break;
    case "graph_route_chosen":
      for (const route of data.routes || []) state.taken.add(data.node + "\u0000" + route);
      drawGraph();
      break;
    case "graph_node_interrupted":
      state.questions.set(data.node, { question: String(data.question || ""), schema: data.schema || null });
      setNode(data.node, "waiting");
      renderQuestions();
      break;
    case "graph_interrupt_answered":
      state.questions.delete(data.node);
      $("answered").textContent = "answered: " + data.node + (data.by ? " (by " + data.by + ")" : "");
      setNode(data.node, "ready");
      renderQuestions();
      break;
    case "graph_run_resumed": case "workflow_resumed":
      setStatus("in_progress");
      state.endedAt = null;
      $("run-error").hidden = true;
      setConnection("live");
      break;
    case "decomposition_complete":
      for (const sub of data.subtasks || []) {
        const node = state.nodes.get(sub.id) || { state: "pending" };
        Object.assign(node, { id: sub.id, description: sub.description || "", deps: sub.dependencies || [] });
        state.nodes.set(sub.id, node);
      }
      if (state.agents.has("planner")) state.agents.get("planner").status = "completed";
      drawGraph();
      break;
    case "agent_start": {
      const key = data.subtask_id || event.agent_id;
      if (event.agent_id) state.agentKeys.set(event.agent_id, key);
      setNode(data.subtask_id, "running");
      const a = agent(key, event.agent_id, data.agent_type);
      a.status = "running";
      a.error = "";
      break;
    }
    case "agent_retry": case "model_retry": {
      const a = state.agents.get(keyOf(event));
      if (a) { a.status = "retrying"; setNode(a.key, "retrying"); }
      break;
    }
    case "token_delta":
      appendText(keyOf(event), String(data.delta || ""));
      break;
    case "cost_update": {
      // Every agent that spends gets a row (planner, synthesizers too), so the rows add
      // up to the totals line.
      const usage = data.usage || {};
      const tokens = (usage.input_tokens || 0) + (usage.output_tokens || 0);
      state.tokens += tokens;
      state.cost = data.total_cost != null ? data.total_cost : state.cost + (data.cost || 0);
      const key = keyOf(event) || "run";
      const a = state.agents.get(key) || agent(key, event.agent_id || "run", event.agent_id === "planner" ? "planner" : "");
      a.tokens += tokens; a.cost += data.cost || 0; a.model = data.model || a.model;
      if (a.status === "pending") a.status = "running";
      break;
    }
    case "agent_complete": case "agent_error": case "agent_skipped": {
      const result = data.result || {};
      const a = agent(result.subtask_id || keyOf(event), event.agent_id || result.agent_id, result.agent_type);
      a.status = result.status || type.replace("agent_", "");
      a.model = result.model || a.model;
      a.error = result.error || "";
      if (!a.text && result.content) a.text = result.content;
      setNode(result.subtask_id, type === "agent_complete" ? "completed" : type === "agent_error" ? "failed" : "skipped");
      break;
    }
    case "synthesis_start":
      state.phase = "synthesis";
      if (event.agent_id) { const a = agent(event.agent_id, event.agent_id, "synthesis"); a.status = "running"; }
      break;
    case "synthesis_complete": {
      const synthesis = data.synthesis || {};
      const by = event.agent_id && state.agents.get(event.agent_id);
      if (by) { by.status = "completed"; if (!by.text) by.text = synthesis.content || ""; }
      state.levels.push(synthesis);
      renderLevels();
      if (data.final !== false) state.synthesisText = synthesis.content || "";
      break;
    }
    case "document_generation_complete":
      state.reportsPending = false;
      if (state.source && data.ends_run) { state.source.close(); setConnection("finished"); }
      loadReports();
      break;
    case "document_error":
      state.reportErrors.push((data.format || "report") + " not written: " + (data.error || "unknown error"));
      showReports();
      break;
    default:
      break;
  }
  if (TERMINAL.has(type)) {
    setStatus(data.status || type.replace("workflow_", ""));
    state.endedAt = event.timestamp;
    if (data.error) { $("run-error").hidden = false; $("run-error").textContent = data.error; }
    if (data.total_cost != null) state.cost = data.total_cost;
    const paused = type === "workflow_paused"; // waits for answers: not done
    if (!paused) state.progress = 100;
    state.reportsPending = Boolean(data.reports_pending);
    if (state.source && !state.reportsPending && !paused) state.source.close(); // paused: keep following
    setConnection(paused ? WAITING : state.reportsPending ? "writing reports…" : "finished");
    loadReports();
  }
  schedule();
}

// Agents are keyed by subtask id: an agent's events may carry the framework's agent id
// (agent_start, tokens, cost) or the one its result chose (agent_complete).
function agent(key, label, type) {
  const id = key || label || "agent";
  if (!state.agents.has(id)) {
    state.agents.set(id, { key: id, label: label || id, type: type || "", status: "pending", model: "", tokens: 0, cost: 0, text: "", error: "" });
  }
  return state.agents.get(id);
}

const keyOf = (event) => state.agentKeys.get(event.agent_id) || event.agent_id;

function appendText(key, delta) {
  if (key && state.agents.has(key)) state.agents.get(key).text += delta;
  else if (state.phase === "synthesis") state.synthesisText += delta;
  else if (key) agent(key, key, "").text += delta;
}

function setNode(subtaskId, value) {
  const node = state.nodes.get(subtaskId);
  if (node) node.state = value;
}

// A graph run's node (kinds: task, switch, aggregate, terminal); ``added`` marks nodes a
// change added while the run went on (planned versus actual).
function graphNode(spec, added) {
  const node = state.nodes.get(spec.id) || { state: "pending", deps: [], visits: 0 };
  Object.assign(node, { id: spec.id, description: spec.description || "", kind: spec.kind || "task" });
  if (added) node.added = true;
  state.nodes.set(spec.id, node);
  return node;
}

function graphEdge(edge) {
  const target = state.nodes.get(edge.target);
  if (target && !target.deps.includes(edge.source)) target.deps.push(edge.source);
}

function nodeClass(node) {
  return ["node", node.state, node.kind || "", node.added ? "added" : ""].filter(Boolean).join(" ");
}

// Questions nodes wait on: a form each.  The API delivers the answer to the process
// driving the run (it goes on at once), or records it for a run nobody drives (it goes
// on when resumed; this page keeps following it either way).
function renderQuestions() {
  const panel = $("questions-panel");
  panel.hidden = state.questions.size === 0 && !$("answered").textContent && !$("answer-note").textContent;
  $("questions").replaceChildren(...[...state.questions].map(([node, asked]) => {
    const form = el("form", { class: "question", "data-node": node });
    const type = asked.schema && asked.schema.type;
    form.append(el("p", {}, el("strong", {}, node), ": ", asked.question));
    if (type === "boolean") {
      for (const [label, value] of [["Yes", true], ["No", false]]) {
        const button = el("button", { type: "button" }, label);
        button.addEventListener("click", () => sendAnswer(form, node, value));
        form.append(button);
      }
    } else {
      const input = el("input", { name: "answer", type: type === "integer" || type === "number" ? "number" : "text", required: "" });
      form.append(input, el("button", { type: "submit" }, "Answer"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        sendAnswer(form, node, input.type === "number" ? Number(input.value) : input.value);
      });
    }
    form.append(el("span", { class: "answer-status" }));
    return form;
  }));
}

async function sendAnswer(form, node, value) {
  const response = await post("/runs/" + encodeURIComponent(state.runId) + "/answers", { node, answer: value, by: "live page" });
  const reply = await response.json().catch(() => ({}));
  const said = {
    delivered: "answer delivered: the run goes on",
    queued: "answer queued: the process driving the run takes it shortly",
    recorded: "answer recorded: the run goes on when it is resumed (orchestrate resume " + state.runId + ")",
    resumed: "answer recorded: the run goes on in the server",
  };
  if (response.ok) {
    // Outside the form: the answer's own event may remove the form before this reply lands.
    $("answer-note").textContent = node + ": " + (said[reply.resumed ? "resumed" : reply.route] || said.recorded);
    form.querySelector(".answer-status").textContent = "";
  } else {
    form.querySelector(".answer-status").textContent = reply.error || "could not record the answer (" + response.status + ")";
  }
}

function setStatus(status) {
  if (state.missing) return;
  state.status = status;
  const badge = $("status");
  badge.hidden = false;
  badge.className = "badge " + status;
  badge.textContent = status.replace("_", " ");
  $("cancel").hidden = isOver();
}

function logEvent(event) {
  const who = event.agent_id ? " " + event.agent_id : "";
  const log = $("log");
  log.append(el("li", { value: String(event.seq) }, event.event_type + who));
  while (log.childElementCount > 300) log.firstElementChild.remove();
}

// Rendering is batched to one pass per animation frame however fast events arrive.
function schedule() {
  if (!state.frame) state.frame = requestAnimationFrame(render);
}

function render() {
  state.frame = 0;
  document.title = (state.title || "Run") + " · orchestration";
  $("title").textContent = state.title || state.runId;
  $("progress-bar").style.width = Math.min(100, state.progress).toFixed(1) + "%";
  $("progress-bar").className = isOver() ? state.status : "";
  $("progress-text").textContent = Math.round(state.progress) + "%";
  $("tokens").textContent = state.tokens.toLocaleString();
  $("cost").textContent = money(state.cost);
  $("agent-count").textContent = String(state.agents.size);
  const end = state.endedAt || Date.now() / 1000;
  if (state.startedAt) $("elapsed").textContent = (end - state.startedAt).toFixed(1) + "s";
  for (const node of state.nodes.values()) {
    const group = document.getElementById("node-" + cssId(node.id));
    if (group) group.setAttribute("class", nodeClass(node));
  }
  renderAgents();
  if (state.synthesisShown !== state.synthesisText) {
    state.synthesisShown = state.synthesisText;
    $("synthesis").replaceChildren(renderMarkdown(state.synthesisText));
  }
}

function cssId(id) { return String(id).replace(/[^A-Za-z0-9_-]/g, (c) => "_" + c.charCodeAt(0)); }

function renderAgents() {
  const body = $("agents").querySelector("tbody");
  const outputs = $("outputs");
  for (const a of state.agents.values()) {
    if (!a.row) {
      a.cells = { status: el("td"), model: el("td"), tokens: el("td", { class: "num" }), cost: el("td", { class: "num" }) };
      a.row = el("tr", { "data-agent": a.key }, el("td", {}, a.label), a.cells.status, a.cells.model, a.cells.tokens, a.cells.cost);
      body.append(a.row);
      a.textEl = el("div", { class: "text", "data-empty": "(no output yet)" });
      a.errorEl = el("div", { class: "error" });
      outputs.append(el("div", { class: "output", "data-agent": a.key }, el("h3", {}, a.label + (a.type ? " · " + a.type : "")), a.errorEl, a.textEl));
    }
    a.cells.status.replaceChildren(el("span", { class: "state " + stateClass(a.status) }), a.status);
    a.cells.model.textContent = a.model || "";
    a.cells.tokens.textContent = a.tokens.toLocaleString();
    a.cells.cost.textContent = money(a.cost);
    if (a.textEl.textContent.length !== a.text.length) a.textEl.textContent = a.text;
    a.errorEl.textContent = a.error || "";
  }
}

function stateClass(status) {
  if (status === "completed") return "completed";
  if (status === "failed" || status === "error" || status === "budget_exceeded") return "failed";
  if (status === "skipped" || status === "cancelled") return "skipped";
  if (status === "retrying") return "retrying";
  return status === "running" ? "running" : "";
}

// Intermediate synthesis levels (cascades) are listed above the final one; a single
// synthesis is only shown once, as the final text.
function renderLevels() {
  const levels = state.levels.length > 1 ? state.levels.slice(0, -1) : [];
  $("synthesis-levels").replaceChildren(...levels.map((synthesis) => {
    const title = "Level " + (synthesis.level || 1) + (synthesis.agent_id ? " · " + synthesis.agent_id : "");
    return el("div", { class: "level" }, el("h3", {}, title), el("div", { class: "text md" }, renderMarkdown(synthesis.content || "")));
  }));
}

function drawGraph() {
  const graph = $("graph");
  const nodes = [...state.nodes.values()];
  $("no-plan").hidden = nodes.length > 0;
  const depth = new Map();
  const depthOf = (node, seen = new Set()) => {
    if (depth.has(node.id)) return depth.get(node.id);
    if (seen.has(node.id)) return 0;
    seen.add(node.id);
    const deps = (node.deps || []).filter((d) => state.nodes.has(d));
    const value = deps.length ? 1 + Math.max(...deps.map((d) => depthOf(state.nodes.get(d), seen))) : 0;
    depth.set(node.id, value);
    return value;
  };
  const columns = [];
  for (const node of nodes) (columns[depthOf(node)] ||= []).push(node);
  const count = Math.max(1, columns.length), GX = 48, H = 46, GY = 14;
  const room = (graph.parentElement.clientWidth || 600) - 24 - (count - 1) * GX;
  const W = Math.max(120, Math.min(200, Math.floor(room / count)));
  const position = new Map();
  columns.forEach((column, x) => column.forEach((node, y) => position.set(node.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  graph.setAttribute("width", String(Math.max(width, 200)));
  graph.setAttribute("height", String(height));
  graph.replaceChildren();
  for (const node of nodes) {
    for (const dep of node.deps || []) {
      const from = position.get(dep), to = position.get(node.id);
      if (!from || !to) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2, mid = (x1 + x2) / 2;
      const source = state.nodes.get(dep);
      const route = source && source.kind === "switch";
      const taken = state.taken.has(dep + "\u0000" + node.id);
      const kind = route ? (taken ? "edge taken" : "edge route") : "edge";
      graph.append(svg("path", { class: kind, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
    }
  }
  for (const node of nodes) {
    const { x, y } = position.get(node.id);
    const group = svg("g", { class: nodeClass(node), id: "node-" + cssId(node.id), transform: `translate(${x},${y})` });
    const title = svg("title");
    title.textContent = node.id + ": " + node.description;
    const label = svg("text", { x: 10, y: 19 });
    label.textContent = short(node.id, Math.floor(W / 7.5) - 3) + (node.visits > 1 ? " ×" + node.visits : "");
    const sub = svg("text", { x: 10, y: 36, class: "sub" });
    sub.textContent = short(node.description, Math.floor(W / 6.8));
    group.append(svg("rect", { width: W, height: H, rx: 6 }), title, label, sub);
    graph.append(group);
  }
}

async function loadReports() {
  const response = await fetch("/runs/" + encodeURIComponent(state.runId));
  if (!response.ok) return;
  const { documents } = await response.json();
  state.reports = documents || [];
  showReports();
}

// The reports written, and a line for each report that could not be written.
function showReports() {
  if (!state.reports.length && !state.reportErrors.length) return;
  $("reports").replaceChildren(
    ...state.reports.map((d) =>
      el("li", {}, el("a", { href: d.url }, d.name || d.format), " (" + d.format + ", " + Math.ceil(d.size_bytes / 1024) + " KB)")),
    ...state.reportErrors.map((text) => el("li", { class: "error" }, text)));
  $("reports-panel").hidden = false;
}

async function cancelRun() {
  const response = await post("/runs/" + encodeURIComponent(state.runId) + "/cancel", {});
  if (!response.ok && response.status !== 409) {
    const answer = await response.json().catch(() => ({}));
    $("run-error").hidden = false;
    $("run-error").textContent = answer.error || "could not cancel (" + response.status + ")";
  }
}

// An unknown id says so (no PENDING badge, no Cancel button, no reconnect loop).
function showMissing() {
  state.missing = true;
  const badge = $("status");
  badge.hidden = false;
  badge.className = "badge missing";
  badge.textContent = "no such run";
  $("cancel").hidden = true;
  $("run-error").hidden = false;
  $("run-error").textContent = "No such run: " + state.runId + ". Pick one from the list of runs.";
  setConnection("");
}

async function openRun() {
  const response = await fetch("/runs/" + encodeURIComponent(state.runId));
  if (response.status === 404) { showMissing(); return; }
  const detail = response.ok ? await response.json().catch(() => ({})) : {};
  if (detail.run && detail.run.status) setStatus(detail.run.status);
  connect();
}

function main() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) { // the server turned it into a cookie; keep it out of history
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  }
  state.runId = params.get("run");
  $("start-form").addEventListener("submit", startRun);
  $("cancel").addEventListener("click", cancelRun);
  if (!state.runId) { showRuns(); return; }
  $("run-view").hidden = false;
  $("title").textContent = state.runId;
  setStatus("pending");
  $("cancel").hidden = true; // shown once the run is known to exist
  openRun();
  setInterval(() => { if (!isOver()) schedule(); }, 1000); // keeps "elapsed" moving
}

document.addEventListener("DOMContentLoaded", main);
