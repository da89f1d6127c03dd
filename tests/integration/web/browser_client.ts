// The test page's script: Python's Playwright sends commands with `drive`, outcomes come back through the
// `emit` function it exposes. `?client=connect` uses connect-web, `?client=grpcweb-text` Google's grpc-web.
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { connectDriver, grpcWebTextDriver, type Command, type Output } from "./driver.js";

declare global {
  interface Window {
    emit(output: Output): void;
    drive(command: Command): void;
  }
}

const params = new URLSearchParams(location.search);
const bridge = params.get("bridge") ?? "";
window.drive =
  params.get("client") === "grpcweb-text"
    ? grpcWebTextDriver(bridge, (o) => window.emit(o))
    : connectDriver(createGrpcWebTransport({ baseUrl: bridge }), (o) => window.emit(o));
document.title = "ready";
