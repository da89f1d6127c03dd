// The desk page: ticket -> POST /api/orders/execute -> a live timeline over /ws/orders/{id}; blotter from
// GET /api/orders; quote preview from GET /api/quote; service health from GET /health.
import { ApiError, OrderStream, apiKey, cancelOrder, executeOrder, getQuote, health, listOrders, setApiKey } from "./api.js";
import { startCharts } from "./charts.js";
import { el } from "./format.js";
import { DEFAULT_PAIR, TOKENS } from "./tokens.js";
import { FINAL, Timeline, renderOrders, renderQuote } from "./views.js";

const $ = (id) => document.getElementById(id);
const MAX_TIMELINES = 8;

const state = {
  slippageBps: 50,
  orderType: "market",
  statusFilter: "",
  timelines: new Map(), // orderId -> { timeline, stream }
  quoteSeq: 0,
  stats: { placed: 0, confirmed: 0, failed: 0, fills: [] },
};

function countTerminal(event, timeline) {
  const stats = state.stats;
  if (!timeline.placedHere) return;
  stats[event.status] += 1;
  if (event.status === "confirmed" && timeline.startMs !== null) {
    stats.fills.push(Date.parse(event.timestamp) - timeline.startMs);
  }
  renderStats();
}

function renderStats() {
  const { placed, confirmed, failed, fills } = state.stats;
  $("st-placed").textContent = placed;
  $("st-confirmed").textContent = confirmed;
  $("st-failed").textContent = failed;
  if (fills.length) {
    const sorted = [...fills].sort((a, b) => a - b);
    $("st-latency").textContent = `${(sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2)}s`;
  }
}

// ---- ticket -------------------------------------------------------------------------------------------------
function fillTokens() {
  for (const [select, chosen] of [[$("token-in"), DEFAULT_PAIR.tokenIn], [$("token-out"), DEFAULT_PAIR.tokenOut]]) {
    select.replaceChildren(...TOKENS.map((t) => el("option", { value: t, selected: t === chosen }, t)));
  }
}

const EXPIRY_SECONDS = { "": 0, "10m": 600, "1h": 3600, "1d": 86400 };

function ticketValues() {
  const values = {
    tokenIn: $("token-in").value,
    tokenOut: state.orderType === "sniper" ? $("mint").value.trim() : $("token-out").value,
    amount: $("amount").value.trim(),
    slippageBps: state.slippageBps,
  };
  if (state.orderType !== "market") {
    values.orderType = state.orderType;
    const price = $("limit-price").value.trim();
    if (price) values.limitPrice = price;
    const seconds = EXPIRY_SECONDS[$("expires").value];
    if (seconds) values.expiresAt = new Date(Date.now() + seconds * 1000).toISOString();
  }
  return values;
}

function chooseType(orderType) {
  state.orderType = orderType;
  for (const b of $("order-type").querySelectorAll("button")) b.classList.toggle("active", b.dataset.type === orderType);
  $("ticket-title").textContent = { market: "Market order", limit: "Limit order", sniper: "Sniper order" }[orderType];
  $("resting-fields").hidden = orderType === "market";
  $("mint-field").hidden = orderType !== "sniper";
  $("token-out").closest("label").hidden = orderType === "sniper";
  scheduleQuote(0);
}

async function cancel(order) {
  try {
    await cancelOrder(order.orderId);
  } catch (error) {
    showTicketError(error.message);
  }
  refreshOrders();
}

function showTicketError(message, field) {
  $("ticket-error").textContent = message || "";
  for (const node of document.querySelectorAll("#ticket .invalid")) node.classList.remove("invalid");
  const target = { amount: "amount", tokenIn: "token-in", tokenOut: state.orderType === "sniper" ? "mint" : "token-out",
    limitPrice: "limit-price", expiresAt: "expires" }[field];
  if (target) $(target).classList.add("invalid");
}

async function placeOrder(event) {
  event.preventDefault();
  const order = ticketValues();
  if (order.tokenIn === order.tokenOut) {
    showTicketError("Pick two different tokens.", "tokenOut");
    return;
  }
  const button = $("place");
  button.disabled = true;
  showTicketError("");
  try {
    const { orderId } = await executeOrder(order);
    state.stats.placed += 1;
    renderStats();
    const timeline = openTimeline({ orderId, tokenIn: order.tokenIn, tokenOut: order.tokenOut, amount: order.amount, status: "pending" });
    timeline.placedHere = true;
    refreshOrders();
  } catch (error) {
    markKey(error);
    if (error instanceof ApiError) showTicketError(error.message, error.field);
    else showTicketError("Cannot reach the bridge.");
  } finally {
    button.disabled = false;
  }
}

// ---- quote preview --------------------------------------------------------------------------------------------
let quoteTimer = null;
function scheduleQuote(delay = 250) {
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(refreshQuote, delay);
}

async function refreshQuote() {
  const values = ticketValues();
  $("amount-unit").textContent = values.tokenIn;
  const seq = ++state.quoteSeq;
  const box = $("quote");
  if (!values.amount || values.tokenIn === values.tokenOut) {
    box.dataset.state = "idle";
    return;
  }
  try {
    const quote = await getQuote(values);
    if (seq !== state.quoteSeq) return; // a newer request is on its way
    renderQuote($("quote-venues").tBodies[0], $("quote-route"), quote, values.tokenOut);
    box.dataset.state = "ok";
    box.dataset.amount = values.amount;
    $("quote-age").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    if ($("ticket-error").dataset.source === "quote") showTicketError("");
  } catch (error) {
    if (seq !== state.quoteSeq) return;
    box.dataset.state = "error";
    $("quote-route").replaceChildren(el("dt", {}, "quote"), el("dd", { class: "err" }, error.message));
    $("quote-venues").tBodies[0].replaceChildren();
  }
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(refreshQuote, 10000);
}

// ---- live timelines -------------------------------------------------------------------------------------------
function updateLiveCount() {
  const all = [...state.timelines.values()];
  const running = all.filter(({ timeline }) => !timeline.finished).length;
  $("live-count").textContent = all.length ? `${running} in flight · ${all.length} shown` : "none yet";
  $("timelines-empty").hidden = all.length > 0;
}

function closeTimeline(timeline) {
  const entry = state.timelines.get(timeline.order.orderId);
  if (!entry) return;
  entry.stream.finished = true;
  if (entry.stream.socket) entry.stream.socket.close(1000);
  timeline.node.remove();
  state.timelines.delete(timeline.order.orderId);
  updateLiveCount();
}

function openTimeline(order) {
  const existing = state.timelines.get(order.orderId);
  if (existing) {
    existing.timeline.node.scrollIntoView({ block: "nearest", behavior: "smooth" });
    existing.timeline.node.classList.add("flash");
    setTimeout(() => existing.timeline.node.classList.remove("flash"), 800);
    return existing.timeline;
  }
  const timeline = new Timeline(order, { onClose: closeTimeline });
  const stream = new OrderStream(order.orderId, {
    onEvent: (event) => {
      timeline.update(event);
      updateLiveCount();
      refreshOrdersSoon();
      if (FINAL.has(event.status)) {
        if (event.status === "confirmed" || event.status === "failed") countTerminal(event, timeline);
        refreshOrders();
      }
    },
    onState: (socketState, close) => {
      timeline.setState(socketState === "error" && close ? `closed ${close.code}: ${close.reason}` : socketState);
    },
  });
  state.timelines.set(order.orderId, { timeline, stream });
  $("timelines").prepend(timeline.node);
  // keep the view bounded: drop the oldest finished cards
  const finished = [...state.timelines.values()].filter(({ timeline: t }) => t.finished);
  while (state.timelines.size > MAX_TIMELINES && finished.length) closeTimeline(finished.pop().timeline);
  updateLiveCount();
  stream.start();
  return timeline;
}

// ---- blotter --------------------------------------------------------------------------------------------------
let blotterTimer = null;
function refreshOrdersSoon() {
  if (blotterTimer === null) blotterTimer = setTimeout(() => { blotterTimer = null; refreshOrders(); }, 400);
}
let ordersInFlight = false;
async function refreshOrders() {
  if (ordersInFlight) return;
  ordersInFlight = true;
  try {
    const { orders } = await listOrders({ status: state.statusFilter, limit: 50 });
    renderOrders($("orders").tBodies[0], orders, { onOpen: openTimeline, onCancel: cancel });
    markKey(null);
  } catch (error) {
    markKey(error);
    $("orders").tBodies[0].replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: "11", class: "err" }, error.message)));
  } finally {
    ordersInFlight = false;
  }
}

// ---- health and clock -----------------------------------------------------------------------------------------
async function refreshHealth() {
  const ok = await health();
  const node = $("health");
  node.dataset.state = ok ? "ok" : "down";
  node.querySelector(".health-text").textContent = ok ? "service online" : "service unreachable";
}

function tick() {
  $("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC";
}

// ---- wiring ---------------------------------------------------------------------------------------------------
// A refusal for the key (401) marks the key field, so the reason is where it can be fixed.
function markKey(error) {
  $("api-key").classList.toggle("invalid", error instanceof ApiError && error.status === 401);
}

function wireApiKey() {
  const input = $("api-key");
  input.value = apiKey();
  input.addEventListener("change", () => {
    setApiKey(input.value.trim());
    input.classList.remove("invalid");
    refreshOrders();
    scheduleQuote(0);
  });
}

function wire() {
  fillTokens();
  wireApiKey();
  $("ticket").addEventListener("submit", placeOrder);
  $("flip").addEventListener("click", () => {
    const a = $("token-in").value;
    $("token-in").value = $("token-out").value;
    $("token-out").value = a;
    scheduleQuote(0);
  });
  for (const id of ["token-in", "token-out"]) $(id).addEventListener("change", () => scheduleQuote(0));
  $("amount").addEventListener("input", () => {
    showTicketError("");
    scheduleQuote();
  });
  for (const button of $("slippage").querySelectorAll("button")) {
    button.addEventListener("click", () => {
      state.slippageBps = Number(button.dataset.bps);
      for (const b of $("slippage").querySelectorAll("button")) b.classList.toggle("active", b === button);
      scheduleQuote(0);
    });
  }
  for (const button of $("order-type").querySelectorAll("button")) {
    button.addEventListener("click", () => chooseType(button.dataset.type));
  }
  for (const button of $("status-filter").querySelectorAll("button")) {
    button.addEventListener("click", () => {
      state.statusFilter = button.dataset.status;
      for (const b of $("status-filter").querySelectorAll("button")) b.classList.toggle("active", b === button);
      refreshOrders();
    });
  }
  tick();
  setInterval(tick, 1000);
  refreshHealth();
  setInterval(refreshHealth, 5000);
  refreshOrders();
  setInterval(refreshOrders, 5000);
  scheduleQuote(0);
  // for tests and the console: window.desk.timelines.get(id).stream.drop()
  window.desk = state;
  state.charts = startCharts($("system"));
}

wire();
