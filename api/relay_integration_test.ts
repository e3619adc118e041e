import { equal } from "node:assert/strict";
import { join } from "node:path";
import { createRelay } from "@coda/relay";
import { waitFor } from "@coda/relay/testing";
import { createApi } from "./app.ts";
import { loadAppConfig } from "./config.ts";
import { createKvRelayBackend } from "./relay_backend.ts";
import { apiJson, pairRunner, revokeRunner, signup } from "./testing.ts";

Deno.test("a paired runner reaches the in-app relay; presence shows; revoking drops it with 4403", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-api-relay-test-" });
  let handler: Deno.ServeHandler = () => new Response("starting", { status: 503 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req, info) => handler(req, info),
  );
  const config = loadAppConfig({ PORT: "0", DEVMODE_DATA_DIR: dataDir }, server.addr.port);
  const kv = await Deno.openKv(join(dataDir, "test.kv"));
  const api = createApi({ config, kv, now: Date.now });
  const relay = createRelay({
    jwtSecret: config.jwtSecret,
    backend: createKvRelayBackend(kv, Date.now),
    allowedOrigins: config.allowedOrigins,
    log: () => {},
  });
  handler = (req, info) => {
    const relayResponse = relay.handle(req, info);
    if (relayResponse) return relayResponse;
    return api.fetch(req, info);
  };
  const url = `http://127.0.0.1:${server.addr.port}`;
  let socket: WebSocket | undefined;
  try {
    const user = await signup(url);
    const runner = await pairRunner(url, user.cookie);
    socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/runner?token=${runner.runnerToken}`);
    const messages: Record<string, unknown>[] = [];
    let closeCode = 0;
    const closed = new Promise<void>((resolve) => {
      socket!.onclose = (event) => {
        closeCode = event.code;
        resolve();
      };
    });
    socket.onmessage = (event) => messages.push(JSON.parse(event.data));
    await waitFor(() => messages.some((m) => m.type === "welcome"), "welcome");
    equal(messages.find((m) => m.type === "welcome")?.runnerId, runner.runnerId);
    await waitFor(async () => {
      const [listed] = await apiJson<{ online: boolean }[]>(url, "/api/devmode/runners", {
        cookie: user.cookie,
      });
      return listed.online;
    }, "presence");
    await revokeRunner(url, user.cookie, runner.runnerId);
    await closed;
    equal(closeCode, 4403);
  } finally {
    if (socket && socket.readyState < WebSocket.CLOSING) socket.close();
    await relay.shutdown();
    await server.shutdown();
    kv.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
