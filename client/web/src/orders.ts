// A typed OrderService client for browser code, over gRPC-Web to the bridge (same port as its HTTP API).
import { getOption } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  OrderService,
  OrderStatus,
  OrderStatusSchema,
  terminal,
  type ExecuteOrderRequest,
  type OrderEvent,
} from "./gen/orderengine/v1/order_service_pb.js";

export type OrderClient = Client<typeof OrderService>;
export type NewOrder = Pick<ExecuteOrderRequest, "tokenIn" | "tokenOut" | "amount"> &
  Partial<Pick<ExecuteOrderRequest, "slippageBps" | "idempotencyKey">>;

/** The statuses the contract marks `[(terminal) = true]`: read from the descriptor, not listed here. */
export const FINAL_STATUSES: ReadonlySet<OrderStatus> = new Set(
  OrderStatusSchema.values.filter((v) => getOption(v, terminal)).map((v) => v.number as OrderStatus),
);

/** Sends `authorization: Bearer <key>` with every call (the service's accounts read it). */
function bearer(apiKey: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${apiKey}`);
    return next(request);
  };
}

/** A client of the bridge at `baseUrl` (e.g. "http://localhost:3000"). */
export function orderClient(baseUrl: string, apiKey?: string): OrderClient {
  const transport = createGrpcWebTransport({ baseUrl, interceptors: apiKey ? [bearer(apiKey)] : [] });
  return createClient(OrderService, transport);
}

/**
 * The order's events with seq > fromSeq as they happen, until the final one. A stream the network breaks
 * (UNAVAILABLE) is reopened from the last seq seen, so no event is missed or repeated.
 */
export async function* watchOrder(
  client: OrderClient,
  orderId: string,
  options: { fromSeq?: bigint; signal?: AbortSignal; maxRetries?: number } = {},
): AsyncGenerator<OrderEvent> {
  let fromSeq = options.fromSeq ?? 0n;
  let retries = 0;
  for (;;) {
    try {
      for await (const { event } of client.watchOrder({ orderId, fromSeq }, { signal: options.signal })) {
        if (!event) continue;
        fromSeq = event.seq;
        retries = 0;
        yield event;
        if (FINAL_STATUSES.has(event.status)) return;
      }
      return;
    } catch (err) {
      const error = ConnectError.from(err);
      if (error.code !== Code.Unavailable || retries >= (options.maxRetries ?? 5)) throw error;
      retries += 1;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** retries));
    }
  }
}

/** Places an order, then yields its events until the final one. */
export async function* placeAndWatch(
  client: OrderClient,
  order: NewOrder,
  signal?: AbortSignal,
): AsyncGenerator<OrderEvent, string> {
  const { orderId } = await client.executeOrder(order, { signal, timeoutMs: 10_000 });
  yield* watchOrder(client, orderId, { signal });
  return orderId;
}

/** "confirmed", "routing", ...: the enum name as the HTTP API spells it. */
export function statusName(status: OrderStatus): string {
  return (OrderStatus[status] ?? "unknown").toLowerCase();
}
