/**
 * The live status page, embedded in the program (so a compiled binary serves it; nothing is read
 * from disk). One HTML document with inline CSS and script: it listens to `/events` (SSE) and
 * redraws the slaves, the running transfers, long work (remerges) and a throughput chart of the
 * last minutes.
 *
 * @module
 */

/** The page served at `/`. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drftpd status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e3e6eb; }
  th { font-weight: 600; background: #eef1f5; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .online { color: #137333; font-weight: 600; }
  .remerging { color: #b06000; font-weight: 600; }
  .offline { color: #a50e0e; font-weight: 600; }
  .bar { background: #e3e6eb; height: .6em; border-radius: .3em; min-width: 6em; }
  .bar > div { background: #3367d6; height: 100%; border-radius: .3em; }
  .muted { color: #6b7280; }
  svg { background: #fff; border: 1px solid #e3e6eb; width: 100%; height: 180px; }
  #conn.down { color: #a50e0e; }
</style>
</head>
<body>
<h1>drftpd</h1>
<div class="muted"><span id="conn">connecting…</span> · <span id="sessions">0</span> sessions ·
  <span id="total">0 B/s</span> now</div>

<h2>Slaves</h2>
<table id="slaves"><thead><tr><th>Slave</th><th>State</th><th class="num">Free</th>
  <th class="num">Total</th><th class="num">Transfers</th><th class="num">Throughput</th></tr></thead>
  <tbody></tbody></table>

<h2>Transfers</h2>
<table id="transfers"><thead><tr><th>User</th><th>Path</th><th>Direction</th><th>Slave</th>
  <th class="num">Bytes</th><th>Progress</th><th class="num">Speed</th></tr></thead>
  <tbody></tbody></table>

<h2>Long work</h2>
<table id="work"><thead><tr><th>Work</th><th>Slave</th><th class="num">Files</th>
  <th class="num">Rate</th><th class="num">ETA</th></tr></thead><tbody></tbody></table>

<h2>Throughput, last minutes</h2>
<svg id="chart" viewBox="0 0 600 180" preserveAspectRatio="none" role="img"
  aria-label="Site throughput"><polyline id="line" fill="none" stroke="#3367d6" stroke-width="2"
  points=""/><text id="peak" x="4" y="14" font-size="12" fill="#6b7280"></text></svg>

<script>
"use strict";
const HISTORY = 300;
let history = [];

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function fill(id, items, render, empty) {
  const body = document.querySelector("#" + id + " tbody");
  body.textContent = "";
  if (items.length === 0) {
    const row = body.insertRow();
    const td = cell(row, empty, "muted");
    td.colSpan = document.querySelectorAll("#" + id + " th").length;
    return;
  }
  for (const item of items) render(body.insertRow(), item);
}
function render(s) {
  document.getElementById("sessions").textContent = s.sessions;
  document.getElementById("total").textContent = bytes(s.sample ? s.sample.total : 0) + "/s";
  fill("slaves", s.slaves, (row, x) => {
    row.dataset.slave = x.name;
    cell(row, x.name);
    cell(row, x.state, x.state);
    cell(row, bytes(x.free), "num");
    cell(row, bytes(x.total), "num");
    cell(row, String(x.activeTransfers), "num");
    cell(row, bytes(x.throughput) + "/s", "num");
  }, "no slaves yet");
  fill("transfers", s.active, (row, t) => {
    row.dataset.path = t.path;
    row.dataset.bytes = String(t.bytes);
    cell(row, t.user);
    cell(row, t.path);
    cell(row, t.direction + (t.route === "direct" ? "" : " (" + t.route + ")"));
    cell(row, t.slave);
    cell(row, String(t.bytes), "num bytes");
    const td = cell(row, "");
    if (t.size) {
      const bar = document.createElement("div");
      bar.className = "bar";
      const inner = document.createElement("div");
      inner.style.width = Math.min(100, 100 * t.bytes / t.size).toFixed(1) + "%";
      bar.appendChild(inner);
      td.appendChild(bar);
    } else {
      td.textContent = bytes(t.bytes);
    }
    cell(row, bytes(t.speed) + "/s", "num");
  }, "no transfers running");
  fill("work", s.work, (row, w) => {
    cell(row, w.kind);
    cell(row, w.slave);
    cell(row, w.files + (w.expectedFiles ? " / " + w.expectedFiles : ""), "num");
    cell(row, Math.round(w.filesPerSecond) + " files/s", "num");
    cell(row, w.etaSeconds === null ? "?" : Math.round(w.etaSeconds) + " s", "num");
  }, "none");
  if (s.history) history = s.history.slice();
  else if (s.sample && (history.length === 0 || history[history.length - 1].at !== s.sample.at)) {
    history.push(s.sample);
  }
  history = history.slice(-HISTORY);
  const peak = Math.max(1, ...history.map((h) => h.total));
  const pts = history.map((h, i) =>
    (600 * (HISTORY - history.length + i) / (HISTORY - 1)).toFixed(1) + "," +
    (175 - 160 * h.total / peak).toFixed(1));
  document.getElementById("line").setAttribute("points", pts.join(" "));
  document.getElementById("peak").textContent = "peak " + bytes(peak) + "/s";
}
function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("events");
  es.onopen = () => { conn.textContent = "live"; conn.className = ""; };
  es.onmessage = (e) => render(JSON.parse(e.data));
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "down"; };
}
connect();
</script>
</body>
</html>
`;
