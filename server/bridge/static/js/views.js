// Rendering: the live timelines, the blotter and the quote preview. No fetching here.
import { amount, bps, clockTime, dateTime, el, shortId, shortSig, since } from "./format.js";

export const STAGES = ["pending", "routing", "building", "submitted", "confirmed"];
// Statuses an order never leaves; `open` (a resting limit or sniper order) is not one of them.
export const FINAL = new Set(["confirmed", "failed", "cancelled", "expired"]);
const CANCELLABLE = new Set(["pending", "open"]);

function statusBadge(status) {
  return el("span", { class: `badge s-${status}` }, status);
}

function routeText(route) {
  if (!route || !route.legs || route.legs.length === 0) return "";
  const legs = route.legs;
  const sameSides = new Set(legs.map((l) => l.tokenIn)).size === 1 && new Set(legs.map((l) => l.tokenOut)).size === 1;
  if (legs.length > 1 && sameSides) {
    const total = legs.reduce((sum, l) => sum + Number(l.amountIn), 0);
    return "split " + legs.map((l) => `${l.dex} ${Math.round((100 * Number(l.amountIn)) / total)}%`).join(" / ");
  }
  const hops = [legs[0].tokenIn, ...legs.map((l) => l.tokenOut)].join("→");
  return `${hops} via ${[...new Set(legs.map((l) => l.dex))].join("/")}`;
}

function eventDetail(event, order) {
  const parts = [];
  if (event.status === "routing" && event.attempt > 1) parts.push(el("span", { class: "warn" }, `↻ attempt ${event.attempt}`));
  if (event.error) {
    parts.push(el("span", { class: event.status === "failed" ? "err" : "warn" },
      `${event.errorCode ? event.errorCode + ": " : ""}${event.error}`));
  }
  if (event.status === "building" && event.route) {
    parts.push(el("span", { class: "venue" }, routeText(event.route)));
    parts.push(el("span", { class: "muted" }, `min ${amount(event.route.minAmountOut)} · impact ${bps(event.route.priceImpactBps)}`));
  }
  if (event.instructions && event.instructions.length) {
    // the swap and SOL wrapping steps say what the transaction does; the full list is in the tooltip
    const key = event.instructions.filter((name) => /swap|wrap/.test(name));
    parts.push(el("span", { class: "muted ix", title: event.instructions.join(" › ") },
      `${event.instructions.length} ix: ${(key.length ? key : event.instructions).join(" › ")}`));
  }
  if (event.status === "submitted" && event.txHash) parts.push(el("span", { class: "sig", title: event.txHash }, `tx ${shortSig(event.txHash)}`));
  if (event.status === "confirmed") {
    parts.push(el("span", { class: "ok" }, `${amount(event.amountOut)} ${order.tokenOut || ""}`));
    if (event.executedPrice) parts.push(el("span", {}, `@ ${amount(event.executedPrice)}`));
  }
  return parts;
}

// One order's card: header, stage bar, event log, summary. update(event) appends; setState shows the socket.
export class Timeline {
  constructor(order, { onClose }) {
    this.order = { ...order };
    this.events = [];
    this.startMs = null;
    this.stageCells = STAGES.map((stage) => el("li", { class: "stage", dataset: { stage } }, stage));
    this.badge = statusBadge(order.status || "pending");
    this.elapsed = el("span", { class: "elapsed mono" }, "");
    this.socketState = el("span", { class: "sock", dataset: { state: "connecting" } }, "connecting");
    this.log = el("tbody");
    this.summary = el("dl", { class: "summary mono" });
    this.node = el("article", { class: "timeline", dataset: { orderId: order.orderId, status: order.status || "pending" } },
      el("header", { class: "tl-head" },
        el("span", { class: "pair" }, `${order.tokenIn || "?"} → ${order.tokenOut || "?"}`),
        el("span", { class: "size mono" }, order.amount ? amount(order.amount) : ""),
        this.badge,
        el("span", { class: "oid mono", title: order.orderId }, shortId(order.orderId)),
        this.elapsed,
        this.socketState,
        el("button", { type: "button", class: "x", title: "Close", "aria-label": "Close", onclick: () => onClose(this) }, "×"),
      ),
      el("ol", { class: "stages" }, this.stageCells),
      el("table", { class: "log mono" }, this.log),
      this.summary,
    );
  }

  get finished() {
    return FINAL.has(this.order.status);
  }

  update(event) {
    this.events.push(event);
    const t = Date.parse(event.timestamp);
    if (this.startMs === null || event.seq === 1) this.startMs = t;
    this.elapsed.textContent = since(this.startMs, t);
    this.order.status = event.status;
    this.node.dataset.status = event.status;
    this.badge.className = `badge s-${event.status}`;
    this.badge.textContent = event.status;
    // A failure marks the stage it happened in; a retry moves the bar back to routing.
    const failed = event.status === "failed";
    const reached = failed ? (this.stageReached ?? 0) : STAGES.indexOf(event.status);
    this.stageCells.forEach((cell, i) => {
      cell.classList.toggle("done", failed ? i < reached : i <= reached);
      cell.classList.toggle("current", i === reached && !failed && event.status !== "confirmed");
      cell.classList.toggle("failed", failed && i === reached);
    });
    this.stageReached = reached;
    this.log.append(el("tr", { class: `ev s-${event.status}`, dataset: { seq: String(event.seq) } },
      el("td", { class: "t" }, clockTime(event.timestamp)),
      el("td", { class: "seq" }, `#${event.seq}`),
      el("td", {}, statusBadge(event.status)),
      el("td", {}, el("div", { class: "detail" }, eventDetail(event, this.order))),
    ));
    if (FINAL.has(event.status)) this.renderSummary(event);
  }

  renderSummary(last) {
    const route = [...this.events].reverse().find((e) => e.route)?.route;
    const sig = [...this.events].reverse().find((e) => e.txHash)?.txHash;
    const rows = [];
    if (route) rows.push(["route", routeText(route)]);
    if (last.executedPrice) rows.push(["price", `${amount(last.executedPrice)} ${this.order.tokenOut}/${this.order.tokenIn}`]);
    if (last.amountOut) rows.push(["received", `${amount(last.amountOut)} ${this.order.tokenOut}`]);
    if (sig) rows.push(["signature", el("span", { class: "sig", title: sig }, shortSig(sig, 10))]);
    if (last.status === "failed") rows.push(["error", el("span", { class: "err" }, `${last.errorCode || ""} ${last.error || ""}`.trim())]);
    this.summary.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  setState(state) {
    this.socketState.dataset.state = state;
    this.socketState.textContent = state;
  }
}

export function renderOrders(tbody, orders, { onOpen, onCancel }) {
  if (!orders.length) {
    tbody.replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: "11" }, "No orders yet.")));
    return;
  }
  tbody.replaceChildren(...orders.map((o) => el("tr", { dataset: { orderId: o.orderId, status: o.status }, onclick: () => onOpen(o), title: "Open timeline" },
    el("td", { class: "t" }, dateTime(o.createdAt)),
    el("td", { class: "oid" }, shortId(o.orderId)),
    el("td", {}, `${o.tokenIn}→${o.tokenOut}`),
    el("td", { class: "num" }, amount(o.amount)),
    el("td", {}, statusBadge(o.status)),
    el("td", { class: "venue" }, o.route ? routeText(o.route).replace(/^.* via /, "") : (o.dex || "—")),
    el("td", { class: "num" }, amount(o.amountOut)),
    el("td", { class: "num" }, amount(o.executedPrice)),
    el("td", { class: o.status === "failed" ? "err" : "sig", title: o.txHash || o.error || "" },
      o.status === "failed" ? (o.errorCode || o.error || "failed") : (o.txHash ? shortSig(o.txHash) : "—")),
    el("td", { class: "type" }, o.orderType === "market" ? "market"
      : `${o.orderType}${o.limitPrice ? ` @ ${amount(o.limitPrice)}` : ""}${o.expiresAt ? ` until ${dateTime(o.expiresAt)}` : ""}`),
    el("td", {}, CANCELLABLE.has(o.status)
      ? el("button", { type: "button", class: "cancel", onclick: (e) => { e.stopPropagation(); onCancel(o); } }, "Cancel")
      : ""),
  )));
}

export function renderQuote(tbody, routeList, quote, tokenOut) {
  const best = quote.route ? quote.route.amountOut : null;
  const bestVenue = quote.quotes.reduce((acc, q) => (!acc || Number(q.amountOut) > Number(acc.amountOut) ? q : acc), null);
  tbody.replaceChildren(...quote.quotes.map((q) => el("tr", { class: q === bestVenue ? "best" : "" },
    el("td", { class: "venue" }, q.dex),
    el("td", { class: "num" }, amount(q.amountOut)),
    el("td", { class: "num" }, bps(q.priceImpactBps)),
    el("td", { class: "num" }, bps(q.feeBps)),
  )));
  const rows = [];
  if (quote.route) {
    rows.push(["route", routeText(quote.route)]);
    rows.push(["expected", `${amount(best)} ${tokenOut}`]);
    rows.push(["minimum", `${amount(quote.route.minAmountOut)} ${tokenOut}`]);
    rows.push(["impact", bps(quote.route.priceImpactBps)]);
  }
  routeList.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}
