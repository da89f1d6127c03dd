// Drives OrderService calls from JSON commands, for the Python tests: the same commands reach connect-web in
// Chromium, connect-node in Node, and Google's grpc-web (text mode) in Chromium. Every outcome is reported
// through `emit` as one JSON-able message carrying the command's id.
import { fromJson, toBinary, fromBinary, toJson, type DescMethod, type JsonObject } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import * as grpcWeb from "grpc-web";
import { OrderService } from "../../../client/web/src/gen/orderengine/v1/order_service_pb.js";

export type Command =
  | { id: number; op: "call"; method: string; request: JsonObject; timeoutMs?: number; headers?: Record<string, string> }
  | { id: number; op: "watch"; request: JsonObject; timeoutMs?: number; headers?: Record<string, string> }
  | { id: number; op: "abort"; target: number };

export type Failure = { code: number; message: string; details: { type: string; value: string }[] };
export type Output = { id: number; result?: unknown; event?: unknown; end?: true; error?: Failure };
type Emit = (output: Output) => void;

function method(name: string): DescMethod {
  const found = OrderService.methods.find((m) => m.name === name);
  if (!found) throw new Error(`no method ${name}`);
  return found;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function connectFailure(err: unknown): Failure {
  const e = ConnectError.from(err);
  const details = e.details.map((d) => ({
    type: "desc" in d ? d.desc.typeName : d.type,
    value: "desc" in d ? "" : hex(d.value),
  }));
  return { code: e.code, message: e.rawMessage, details };
}

/** Commands against connect's gRPC-Web transport (connect-web's in browsers, connect-node's in Node). */
export function connectDriver(transport: Transport, emit: Emit): (command: Command) => void {
  const client = createClient(OrderService, transport) as unknown as Record<
    string,
    (request: unknown, options: object) => unknown
  >;
  const aborts = new Map<number, AbortController>();
  return (command) => {
    if (command.op === "abort") {
      aborts.get(command.target)?.abort();
      emit({ id: command.id, end: true });
      return;
    }
    const abort = new AbortController();
    aborts.set(command.id, abort);
    const name = command.op === "watch" ? "WatchOrder" : command.method;
    const m = method(name);
    const options = { signal: abort.signal, timeoutMs: command.timeoutMs, headers: command.headers };
    const input = fromJson(m.input, command.request);
    const run = async () => {
      if (m.methodKind === "server_streaming") {
        const stream = client[m.localName](input, options) as AsyncIterable<never>;
        for await (const response of stream) emit({ id: command.id, event: toJson(m.output, response) });
        emit({ id: command.id, end: true });
      } else {
        const response = await (client[m.localName](input, options) as Promise<never>);
        emit({ id: command.id, result: toJson(m.output, response) });
      }
    };
    run()
      .catch((err) => emit({ id: command.id, error: connectFailure(err) }))
      .finally(() => aborts.delete(command.id));
  };
}

/** The same commands against Google's grpc-web client in its text mode (application/grpc-web-text). */
export function grpcWebTextDriver(baseUrl: string, emit: Emit): (command: Command) => void {
  const client = new grpcWeb.GrpcWebClientBase({ format: "text" });
  const streams = new Map<number, grpcWeb.ClientReadableStream<unknown>>();
  const anyType = Object as unknown as new (...args: unknown[]) => unknown;
  return (command) => {
    if (command.op === "abort") {
      streams.get(command.target)?.cancel();
      emit({ id: command.id, end: true });
      return;
    }
    const m = method(command.op === "watch" ? "WatchOrder" : command.method);
    const streaming = m.methodKind === "server_streaming";
    const descriptor = new grpcWeb.MethodDescriptor(
      `/${OrderService.typeName}/${m.name}`,
      streaming ? grpcWeb.MethodType.SERVER_STREAMING : grpcWeb.MethodType.UNARY,
      anyType,
      anyType,
      (request: unknown) => toBinary(m.input, request as never),
      (bytes: Uint8Array) => fromBinary(m.output, bytes),
    );
    const metadata: grpcWeb.Metadata = { ...command.headers };
    if (command.timeoutMs !== undefined) metadata.deadline = String(Date.now() + command.timeoutMs);
    const url = `${baseUrl}/${OrderService.typeName}/${m.name}`;
    const request = fromJson(m.input, command.request);
    const fail = (err: grpcWeb.RpcError) =>
      emit({ id: command.id, error: { code: err.code, message: err.message, details: [] } });
    if (streaming) {
      const stream = client.serverStreaming(url, request, metadata, descriptor);
      streams.set(command.id, stream);
      stream.on("data", (response) => emit({ id: command.id, event: toJson(m.output, response as never) }));
      stream.on("error", fail);
      stream.on("end", () => emit({ id: command.id, end: true }));
    } else {
      client
        .unaryCall(url, request, metadata, descriptor)
        .then((response) => emit({ id: command.id, result: toJson(m.output, response as never) }), fail);
    }
  };
}
