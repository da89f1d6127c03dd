// Live charts of the whole system, drawn as plain SVG from GET /api/metrics (the sum of every process's
// /metrics): throughput, end-to-end latency percentiles, orders in flight by stage, failures by reason, and the
// pools' prices. Each chart keeps the last WINDOW samples; rates and percentiles come from successive samples.
const NS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const WINDOW = 120;
const RATE_SPAN = 5; // samples between which a rate or percentile is taken
const COLORS = ["#f0b90b", "#22c58b", "#4c9aff", "#a78bfa", "#f6465d", "#f5a524", "#8b96a5"];

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// One chart: named series of numbers over time, drawn as lines scaled to the largest value shown.
class LineChart {
  constructor(root, { title, unit = "", percent = false }) {
    this.series = new Map(); // name -> number[]
    this.unit = unit;
    this.percent = percent;
    this.root = root;
    root.classList.add("chart");
    root.innerHTML = "";
    const head = document.createElement("div");
    head.className = "chart-head";
    head.textContent = title;
    this.legend = document.createElement("div");
    this.legend.className = "chart-legend mono";
    this.svg = svg("svg", { viewBox: "0 0 300 100", preserveAspectRatio: "none" });
    root.append(head, this.svg, this.legend);
    this.draws = 0;
  }

  push(values) {
    for (const [name, value] of Object.entries(values)) {
      if (!this.series.has(name)) this.series.set(name, []);
    }
    for (const [name, points] of this.series) {
      points.push(name in values && Number.isFinite(values[name]) ? values[name] : null);
      if (points.length > WINDOW) points.shift();
    }
    this.draw();
  }

  draw() {
    const all = [...this.series.values()].flat().filter((v) => v !== null);
    const top = Math.max(1e-9, ...all.map(Math.abs)) * 1.1;
    const bottom = this.percent ? -top : 0;
    this.svg.replaceChildren(svg("line", { x1: 0, x2: 300, y1: 99.5, y2: 99.5, class: "axis" }));
    this.legend.replaceChildren();
    let i = 0;
    for (const [name, points] of this.series) {
      const color = COLORS[i++ % COLORS.length];
      const d = points
        .map((v, x) => (v === null ? null : [(300 * (x + WINDOW - points.length)) / (WINDOW - 1), 100 - ((v - bottom) / (top - bottom)) * 100]))
        .filter(Boolean)
        .map(([x, y], j) => `${j ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`)
        .join("");
      if (d) this.svg.append(svg("path", { d, stroke: color, class: "series", "data-series": name }));
      const last = points.at(-1);
      const item = document.createElement("span");
      item.style.color = color;
      item.textContent = `${name} ${last === null || last === undefined ? "—" : this.format(last)}`;
      this.legend.append(item);
    }
    this.draws += 1;
    this.root.dataset.draws = String(this.draws);
  }

  format(v) {
    if (this.percent) return `${v >= 0 ? "+" : ""}${v.toFixed(2)}%`;
    return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${this.unit}`;
  }
}

// The q-quantile of the orders finished between two samples of cumulative buckets ([le, count] pairs).
function quantile(before, after, q) {
  const counts = after.map(([le, n], i) => [le, n - (before[i] ? before[i][1] : 0)]);
  const total = counts.length ? counts.at(-1)[1] : 0;
  if (total <= 0) return null;
  let lowLe = 0;
  let lowN = 0;
  for (const [le, n] of counts) {
    if (n >= q * total) return lowLe + (le - lowLe) * ((q * total - lowN) / Math.max(1e-9, n - lowN));
    lowLe = le;
    lowN = n;
  }
  return lowLe;
}

export function startCharts(root) {
  const box = (name) => root.querySelector(`[data-chart="${name}"]`);
  const charts = {
    throughput: new LineChart(box("throughput"), { title: "Throughput (orders/s)" }),
    latency: new LineChart(box("latency"), { title: "Pending → final (s)", unit: "s" }),
    stages: new LineChart(box("stages"), { title: "In flight by stage" }),
    failures: new LineChart(box("failures"), { title: "Failures by reason (total)" }),
    prices: new LineChart(box("prices"), { title: "Pool prices (change since open)", percent: true }),
  };
  const history = [];
  const firstPrice = new Map();

  async function tick() {
    let sample;
    try {
      const res = await fetch("/api/metrics", { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      sample = await res.json();
    } catch {
      root.dataset.state = "down";
      return;
    }
    root.dataset.state = sample.targets ? "ok" : "unconfigured";
    history.push(sample);
    if (history.length > RATE_SPAN + 1) history.shift();
    const old = history[0];
    const dt = sample.time - old.time;
    const done = (s) => (s.events.confirmed || 0) + (s.events.failed || 0);
    charts.throughput.push({
      confirmed: dt > 0 ? ((sample.events.confirmed || 0) - (old.events.confirmed || 0)) / dt : 0,
      failed: dt > 0 ? ((sample.events.failed || 0) - (old.events.failed || 0)) / dt : 0,
    });
    const finished = done(sample) - done(old);
    charts.latency.push(
      finished > 0
        ? Object.fromEntries(
            [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]].map(([k, q]) => [k, quantile(old.latency_buckets, sample.latency_buckets, q)]),
          )
        : { p50: null, p95: null, p99: null },
    );
    charts.stages.push(sample.in_flight);
    charts.failures.push(Object.keys(sample.failures).length ? sample.failures : { none: 0 });
    const prices = {};
    for (const [id, pool] of Object.entries(sample.pools)) {
      if (!pool.pair.startsWith("SOL/")) continue; // the SOL pairs: few lines, all moving
      if (!firstPrice.has(id)) firstPrice.set(id, pool.price);
      prices[`${pool.pair} ${pool.venue}`] = (100 * (pool.price - firstPrice.get(id))) / firstPrice.get(id);
    }
    charts.prices.push(prices);
  }

  tick();
  setInterval(tick, POLL_MS);
  return charts;
}
