// fedledger dashboard: fetches /api/state, draws it, and counts deadlines down between fetches.
// Every string from the chain (descriptions, reasons, CIDs) goes in through textContent, never as
// HTML: a proposal description is whatever its proposer typed.
"use strict";

const state = {
  payload: null,
  clockOffset: 0, // server wall clock minus this browser's, in seconds
  timer: null,
};

const PLOT_CONFIG = { displayModeBar: false, responsive: true };
const PHASE_WINDOWS = { COMMIT: "commit window", REVEAL: "reveal window", AGGREGATION: "aggregation window" };
const COLORS = { accepted: "#1f9d55", rejected: "#d64545", stale: "#c98a00", open: "#9db8ec", accuracy: "#2f6fde" };

// ------------------------------------------------------------------ helpers

function $(id) { return document.getElementById(id); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fillBody(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}

function badge(text, kind) { return el("span", text, "badge " + (kind || text)); }

function shortAddress(address) {
  const span = el("span", address.slice(0, 6) + "…" + address.slice(-4), "addr");
  span.title = address;
  return span;
}

function shortId(id) {
  const span = el("span", id.length > 10 ? id.slice(0, 6) + "…" + id.slice(-4) : id, "addr");
  span.title = id;
  return span;
}

function nowServer() { return Date.now() / 1000 + state.clockOffset; }

// The time the contracts will see in the next block: the wall clock, unless the chain runs
// ahead of it (a devnet whose time was moved forward).
function nowChain() {
  const snap = state.payload && state.payload.snapshot;
  if (!snap) return nowServer();
  return Math.max(nowServer(), snap.chain_time + (nowServer() - snap.server_time));
}

function clockTime(unix) {
  if (!unix) return "–";
  return new Date(unix * 1000).toISOString().slice(11, 19) + " UTC";
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60), r = s % 60;
  return m > 0 ? `${m}:${String(r).padStart(2, "0")}` : `${r} s`;
}

function relative(unix) {
  const delta = unix - nowChain();
  if (Math.abs(delta) < 1) return "now";
  return delta > 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}

function percent(value) { return value === null || value === undefined ? null : (100 * value).toFixed(2) + " %"; }

// ------------------------------------------------------------------ fetching

async function load() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`dashboard server answered ${response.status}`);
    const payload = await response.json();
    state.clockOffset = payload.server_time - Date.now() / 1000;
    state.payload = payload;
    render(payload);
  } catch (error) {
    showBanner(`The dashboard server does not answer (${error.message}); retrying.`);
  }
  const seconds = state.payload ? state.payload.refresh_seconds : 2;
  state.timer = setTimeout(load, Math.max(0.5, seconds) * 1000);
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

// ------------------------------------------------------------------ drawing

function render(payload) {
  const snap = payload.snapshot;
  if (payload.error) {
    const since = payload.updated_at ? ` Showing what was read at ${clockTime(payload.updated_at)}.` : "";
    showBanner(`Cannot read the chain: ${payload.error}.${since}`);
  } else {
    showBanner("");
  }
  document.body.dataset.ready = snap ? "true" : "false";
  if (!snap) return;
  $("chain").textContent = `chain ${snap.chain_id} · task ${snap.task} · node ${payload.node}`;
  renderRound(snap);
  renderTimeline(snap);
  renderAccuracy(snap, payload);
  renderParticipants(snap.participants);
  renderProposals(snap.proposals);
  renderParameters(snap.parameters);
  tick();
}

function renderRound(snap) {
  const current = snap.current_round;
  $("round-number").textContent = current.number;
  const phase = $("round-phase");
  phase.textContent = current.phase;
  phase.className = "phase " + current.phase;
  $("round-commits").textContent = `${current.commits} of ${current.expected_commits} expected`;
  $("round-reveals").textContent = `${current.reveals}`;
  $("round-rule").textContent = current.rule || "–";
  $("round-privacy").textContent = current.privacy || "–";
  $("global-model").textContent = `version ${snap.global_model_version}`;
  $("deadline-commit").textContent = clockTime(current.commit_deadline);
  $("deadline-reveal").textContent = clockTime(current.reveal_deadline);
  $("deadline-aggregation").textContent = clockTime(current.aggregation_deadline);
}

// Called every second: countdowns and the age of the data move between fetches.
function tick() {
  const payload = state.payload;
  if (!payload || !payload.snapshot) return;
  const current = payload.snapshot.current_round;
  const countdown = $("round-countdown");
  const phaseWindow = PHASE_WINDOWS[current.phase];
  if (phaseWindow && current.phase_deadline) {
    const left = current.phase_deadline - nowChain();
    countdown.textContent = left > 0
      ? `${phaseWindow} ends in ${duration(left)}`
      : `${phaseWindow} ended ${duration(-left)} ago; the next block moves the round on`;
  } else {
    countdown.textContent = "";
  }
  for (const [id, key] of [["deadline-commit", "commit_deadline"], ["deadline-reveal", "reveal_deadline"],
                           ["deadline-aggregation", "aggregation_deadline"]]) {
    const deadline = current[key];
    $(id).textContent = deadline ? `${clockTime(deadline)} (${relative(deadline)})` : "–";
  }
  const age = payload.updated_at ? duration(nowServer() - payload.updated_at) + " ago" : "never";
  $("freshness").textContent = `block ${payload.snapshot.block} · read ${age}`;
}

function renderTimeline(snap) {
  const totals = snap.totals;
  $("total-finalized").textContent = totals.finalized;
  $("total-stale").textContent = totals.stale;
  $("total-accepted").textContent = totals.accepted;
  $("total-rejected").textContent = totals.rejected;
  const rounds = snap.rounds;
  const x = rounds.map((r) => r.round);
  const only = (outcome, value) => rounds.map((r) => (r.outcome === outcome ? value(r) : 0));
  const traces = [
    { name: "accepted", type: "bar", x, y: only("finalized", (r) => r.accepted), marker: { color: COLORS.accepted } },
    { name: "rejected", type: "bar", x, y: only("finalized", (r) => r.rejected), marker: { color: COLORS.rejected } },
    { name: "stale (commits)", type: "bar", x, y: only("stale", (r) => Math.max(r.commits, 1)), marker: { color: COLORS.stale } },
    { name: "open (commits)", type: "bar", x, y: only("open", (r) => r.commits), marker: { color: COLORS.open } },
  ];
  const layout = {
    barmode: "stack", margin: { t: 30, r: 10, b: 40, l: 40 }, legend: { orientation: "h", x: 0, y: 1.15 },
    xaxis: { title: { text: "round" }, dtick: rounds.length > 30 ? undefined : 1 }, yaxis: { title: { text: "updates" }, rangemode: "tozero" },
  };
  Plotly.react("timeline-chart", traces, layout, PLOT_CONFIG);

  fillBody($("rounds-table"), rounds.slice().reverse().map((r) => {
    const tr = row([
      r.round, badge(r.outcome), r.rule, r.commits, r.reveals, r.accepted, r.rejected, r.attestations,
      r.accuracy !== null ? percent(r.accuracy) : (r.accuracy_problem ? "not evaluated" : (r.outcome === "finalized" ? "evaluating…" : null)),
      epsilonText(r),
      r.outcome === "finalized" ? r.trainer_reward.shown : null,
      r.model_cid ? shortId(r.model_cid) : null,
    ]);
    tr.dataset.round = r.round;
    if (r.accuracy_problem) tr.cells[8].title = r.accuracy_problem;
    const reasons = Object.entries(r.rejections);
    if (reasons.length) tr.cells[6].title = reasons.map(([who, why]) => `${who}: ${why}`).join("\n");
    return tr;
  }));
}

// "–" without privacy, "∞" once a round released updates without noise, else the epsilon.
function epsilonText(r) {
  if (r.epsilon !== null) return r.epsilon.toFixed(2);
  if (r.privacy === "off" || r.outcome === "open") return null;
  return "∞";
}

function renderAccuracy(snap, payload) {
  const scored = snap.rounds.filter((r) => r.outcome === "finalized" && r.accuracy !== null);
  const traces = [{
    name: "global model", type: "scatter", mode: "lines+markers",
    x: scored.map((r) => r.round), y: scored.map((r) => r.accuracy),
    line: { color: COLORS.accuracy }, hovertemplate: "round %{x}: %{y:.2%}<extra></extra>",
  }];
  if (snap.initial_accuracy !== null && scored.length) {
    const first = scored[0].round, last = scored[scored.length - 1].round;
    traces.push({
      name: "initial model", type: "scatter", mode: "lines", x: [first, last],
      y: [snap.initial_accuracy, snap.initial_accuracy], line: { dash: "dash", color: "#9aa3b5" },
      hovertemplate: "initial model: %{y:.2%}<extra></extra>",
    });
  }
  const layout = {
    margin: { t: 30, r: 10, b: 40, l: 50 }, legend: { orientation: "h", x: 0, y: 1.15 },
    xaxis: { title: { text: "round" }, dtick: scored.length > 30 ? undefined : 1 },
    yaxis: { title: { text: "accuracy" }, tickformat: ".0%", rangemode: "tozero" },
  };
  Plotly.react("accuracy-chart", traces, layout, PLOT_CONFIG);
  const pending = snap.accuracy_pending ? ` ${snap.accuracy_pending} model(s) being evaluated.` : "";
  $("accuracy-note").textContent = payload.evaluator
    ? `Each finalized global model fetched from IPFS, checked against its on-chain digest and scored on ${payload.evaluator} by this dashboard.${pending}`
    : "Accuracy is off (started with --no-accuracy).";
}

function renderParticipants(people) {
  fillBody($("participants-table"), people.map((p) => {
    const tr = row([
      shortAddress(p.address),
      p.role.toLowerCase() + (p.registered ? "" : " (left)"),
      badge(p.active ? "yes" : "no"),
      p.stake.shown, p.votes.shown, p.rewards.shown,
      p.role === "TRAINER" ? p.updates : null,
      p.role === "TRAINER" ? p.rejected : null,
      p.slashes ? `${p.slashed.shown} (${p.slashes}×)` : p.slashed.shown,
    ]);
    tr.dataset.address = p.address;
    return tr;
  }));
}

function renderProposals(proposals) {
  $("proposals-empty").hidden = proposals.length > 0;
  fillBody($("proposals-table"), proposals.slice().reverse().map((p) => {
    const title = el("div");
    title.appendChild(el("div", p.description));
    const by = el("div", "by ", "muted small");
    by.appendChild(shortAddress(p.proposer));
    by.appendChild(document.createTextNode(" · id "));
    by.appendChild(shortId(p.id));
    title.appendChild(by);
    const changes = el("ul", null, "plain");
    for (const change of p.changes) changes.appendChild(el("li", change));
    const voters = el("ul", null, "plain small");
    for (const vote of p.votes) {
      const item = el("li");
      item.appendChild(shortAddress(vote.voter));
      item.appendChild(document.createTextNode(` ${vote.support.toLowerCase()} ${vote.weight.shown}`));
      if (vote.reason) item.title = vote.reason;
      voters.appendChild(item);
    }
    let votingWindow = `${clockTime(p.vote_start)} – ${clockTime(p.vote_end)}`;
    if (p.eta) votingWindow += `; executable ${clockTime(p.eta)}`;
    const tr = row([
      title, badge(p.state), changes, p.votes_for.shown, p.votes_against.shown, p.votes_abstain.shown,
      p.quorum ? p.quorum.shown : null, votingWindow, p.votes.length ? folded(voters, `${p.votes.length} voters`, p.id) : "none",
    ]);
    tr.dataset.proposal = p.id;
    tr.dataset.state = p.state;
    return tr;
  }));
}

// Long lists fold into a <details> (kept open across refreshes once the reader opens it).
const openFolds = new Set();
function folded(list, label, key) {
  if (list.children.length <= 3) return list;
  const details = el("details");
  const summary = el("summary", label);
  details.appendChild(summary);
  details.appendChild(list);
  details.open = openFolds.has(key);
  details.addEventListener("toggle", () => (details.open ? openFolds.add(key) : openFolds.delete(key)));
  return details;
}

function renderParameters(parameters) {
  for (const contract of ["task", "registry"]) {
    fillBody($(`${contract}-parameters`), parameters.filter((p) => p.contract === contract).map((p) => {
      const tr = document.createElement("tr");
      tr.appendChild(el("th", p.name.toLowerCase().replaceAll("_", " ")));
      const value = el("td", p.shown);
      value.title = `${p.name} = ${p.value}`;
      tr.appendChild(value);
      tr.dataset.parameter = p.name;
      return tr;
    }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  load();
  setInterval(tick, 1000);
});
