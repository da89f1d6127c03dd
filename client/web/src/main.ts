// The example page: place an order through gRPC-Web and list its events as they arrive.
import { ConnectError } from "@connectrpc/connect";
import { orderClient, placeAndWatch, statusName } from "./orders.js";

const bridge = new URLSearchParams(location.search).get("bridge") ?? "http://localhost:3000";
const client = orderClient(bridge);

const form = document.querySelector<HTMLFormElement>("#order")!;
const events = document.querySelector<HTMLOListElement>("#events")!;
const problem = document.querySelector<HTMLElement>("#problem")!;

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(form);
  events.replaceChildren();
  problem.textContent = "";
  try {
    const order = {
      tokenIn: String(data.get("tokenIn")),
      tokenOut: String(data.get("tokenOut")),
      amount: String(data.get("amount")),
    };
    for await (const event of placeAndWatch(client, order)) {
      const item = document.createElement("li");
      const extra = event.txSignature ? ` tx ${event.txSignature.slice(0, 12)}…` : "";
      item.textContent = `#${event.seq} ${statusName(event.status)}${extra}`;
      item.dataset.status = statusName(event.status);
      events.append(item);
    }
  } catch (err) {
    const error = ConnectError.from(err);
    problem.textContent = `${error.code}: ${error.rawMessage}`;
  }
});
