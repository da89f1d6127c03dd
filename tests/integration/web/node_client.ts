// A gRPC-Web client in Node (connect-node's transport over HTTP/1.1): one JSON command per stdin line, one JSON
// outcome per stdout line. Usage: node node_client.js <bridge base URL>
import { createInterface } from "node:readline";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { connectDriver, type Command } from "./driver.js";

const transport = createGrpcWebTransport({ baseUrl: process.argv[2], httpVersion: "1.1" });
const drive = connectDriver(transport, (output) => process.stdout.write(`${JSON.stringify(output)}\n`));
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim()) drive(JSON.parse(line) as Command);
}
