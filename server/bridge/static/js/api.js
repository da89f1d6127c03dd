// The bridge's HTTP and WebSocket API, as the page uses it.

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.field = body ? body.field : null;
    this.code = body ? body.code : null;
  }
}

// The caller's API key, kept in this browser's local storage; empty means anonymous (when the service allows it).
const KEY_STORAGE = "orderengine.apiKey";

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lasts as long as the page
  }
  memoryKey = key;
}

let memoryKey = null;
const currentKey = () => (memoryKey !== null ? memoryKey : apiKey());

async function request(path, options = {}) {
  const headers = { "content-type": "application/json" };
  const key = currentKey();
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(path, { headers, ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export function executeOrder(order) {
  return request("/api/orders/execute", { method: "POST", body: JSON.stringify(order) });
}

export function listOrders({ status = "", limit = 50 } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (status) params.set("status", status);
  return request(`/api/orders?${params}`);
}

export function cancelOrder(orderId) {
  return request(`/api/orders/${encodeURIComponent(orderId)}/cancel`, { method: "POST", body: "{}" });
}

export function getOrder(orderId) {
  return request(`/api/orders/${encodeURIComponent(orderId)}`);
}

export function getQuote({ tokenIn, tokenOut, amount, slippageBps }) {
  const params = new URLSearchParams({ tokenIn, tokenOut, amount: String(amount), slippageBps: String(slippageBps) });
  return request(`/api/quote?${params}`);
}

export async function health() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    return response.ok;
  } catch {
    return false;
  }
}

const TERMINAL = new Set(["confirmed", "failed", "cancelled", "expired"]);
// Close codes after which reconnecting cannot help.
const FINAL_CLOSE = new Set([1000, 4400, 4401, 4404]);

// Follows one order over /ws/orders/{id}. When the socket drops before the terminal event it reconnects with
// ?fromSeq=<last seq seen> (capped backoff), and drops anything at or below that seq: no gap, no duplicate.
export class OrderStream {
  constructor(orderId, { onEvent, onState }) {
    this.orderId = orderId;
    this.lastSeq = 0;
    this.onEvent = onEvent;
    this.onState = onState;
    this.retries = 0;
    this.finished = false;
    this.socket = null;
  }

  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ fromSeq: String(this.lastSeq) });
    const key = currentKey();
    if (key) params.set("access_token", key); // a browser cannot set headers on a WebSocket
    const url = `${scheme}://${location.host}/ws/orders/${encodeURIComponent(this.orderId)}?${params}`;
    this.onState(this.retries ? "reconnecting" : "connecting");
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => this.onState("live");
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
      this.retries = 0;
      if (TERMINAL.has(event.status)) this.finished = true;
      this.onEvent(event);
    };
    socket.onclose = (close) => {
      if (this.finished || FINAL_CLOSE.has(close.code)) {
        this.finished = true;
        this.onState(close.code === 1000 || this.finished && close.code < 4000 ? "done" : "error", close);
        return;
      }
      const delay = Math.min(500 * 2 ** this.retries, 5000);
      this.retries += 1;
      this.onState("reconnecting", close);
      setTimeout(() => this.start(), delay);
    };
  }

  // Tests and curious users: drop the socket as a network would, and watch it resume.
  drop() {
    if (this.socket) this.socket.close(4000, "dropped by the page");
  }
}
