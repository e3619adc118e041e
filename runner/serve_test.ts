import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startServe } from "./serve.ts";
import { silentLogger } from "./log.ts";
import { TestClient, testShellEnv, waitFor } from "./testing.ts";

async function serve(home: string) {
  return await startServe({
    port: 0,
    allowedOrigins: ["http://localhost:8080"],
    log: silentLogger,
    sessions: { env: testShellEnv(home), home, graceMs: 60_000, replayBytes: 1024 * 1024 },
  });
}

Deno.test("serve: echo round trip, then resume by session and offset", async () => {
  const home = await Deno.makeTempDir();
  const server = await serve(home);
  try {
    assert(server.clientUrl.startsWith(`${server.baseUrl}/client?token=`));
    assert(server.accessToken.length >= 43, "at least 256 bits, base64url");
    const first = new TestClient(`${server.clientUrl}&cols=90&rows=20`, { origin: "http://localhost:8080" });
    await first.opened;
    await waitFor(() => first.metas()[0]?.startsWith("coda:session:"), "session meta");
    const sessionId = first.metas()[0].slice("coda:session:".length);
    assertEquals(first.metas()[1], `coda:cwd:${home}`);
    first.send({ type: "stdin", sessionId, data: "echo one-$((1 + 1))\r" });
    await first.waitForOutput("one-2");
    first.send({ type: "stdin", sessionId: "another-session", data: "echo nope\r" });
    const offset = first.offset;
    await first.close();

    const second = new TestClient(`${server.clientUrl}&session=${sessionId}&offset=${offset}`);
    await second.opened;
    second.send({ type: "stdin", sessionId, data: "echo two-$((1 + 2))\r" });
    await second.waitForOutput("two-3");
    assert(!second.output().includes("one-2"), "no duplicate of what the client already had");
    const stdout = second.frames.filter((f) => f.type === "stdout");
    assertEquals(stdout[0].offset, offset);
    await second.close();
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("serve: refuses a missing or wrong token and a foreign Origin", async () => {
  const home = await Deno.makeTempDir();
  const server = await serve(home);
  const http = server.baseUrl.replace("ws:", "http:");
  try {
    const missing = await fetch(`${http}/client`);
    assertEquals(missing.status, 401);
    assertEquals(await missing.json(), { error: "missing or wrong access token" });
    const wrong = await fetch(`${http}/client?token=${"A".repeat(43)}`);
    assertEquals(wrong.status, 401);
    await wrong.body?.cancel();
    const foreign = await fetch(`${http}/client?token=${server.accessToken}`, {
      headers: { origin: "https://evil.example" },
    });
    assertEquals(foreign.status, 403);
    await foreign.body?.cancel();

    const refused = new TestClient(`${server.baseUrl}/client`);
    await refused.opened.then(() => assert(false, "must not open"), () => {});
    await refused.closed;
    const evil = new TestClient(server.clientUrl, { origin: "https://evil.example" });
    await evil.opened.then(() => assert(false, "must not open"), () => {});
    await evil.closed;
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("serve: a text or binary frame over 1 MiB closes the client 1009", async () => {
  const home = await Deno.makeTempDir();
  const server = await serve(home);
  try {
    for (const frame of ["x".repeat(1024 * 1024 + 1), new Uint8Array(20 * 1024 * 1024)]) {
      const client = new TestClient(server.clientUrl);
      await client.opened;
      client.socket.send(frame);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        client.closed,
        new Promise((resolve) => timer = setTimeout(() => resolve("still open after 10 s"), 10_000)),
      ]);
      clearTimeout(timer);
      await client.close();
      assertEquals(closed, { code: 1009, reason: "frame too big" });
    }
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("serve: a session that ends under a full-speed stream closes 1000 after its last byte, every time", async () => {
  const home = await Deno.makeTempDir();
  const server = await serve(home);
  try {
    // 4 MB of base64 lines: far more than a socket takes at once, so the end comes with output queued.
    const random = new Uint8Array(3_000_000);
    for (let at = 0; at < random.length; at += 65536) crypto.getRandomValues(random.subarray(at, at + 65536));
    const data = random.toBase64().match(/.{1,76}/g)!.join("\n") + "\n";
    await Deno.writeTextFile(`${home}/data.b64`, data);
    for (const binary of [true, false, true, false]) {
      const client = new TestClient(`${server.clientUrl}&ack=1`, undefined, { binary });
      await client.opened;
      await waitFor(() => client.metas()[0]?.startsWith("coda:session:"), "session meta");
      const sessionId = client.metas()[0].slice("coda:session:".length);
      // Acks as it receives, as the SPA does once it has rendered.
      const acker = setInterval(() => client.send({ type: "ack", sessionId, offset: client.offset }), 5);
      client.send({ type: "stdin", sessionId, data: "stty -echo; cat data.b64; exit 3\r" });
      const closed = await client.closed;
      clearInterval(acker);
      assertEquals(
        closed,
        { code: 1000, reason: "session ended" },
        `binary ${binary}: ${JSON.stringify(closed)}`,
      );
      const got = binary ? new TextDecoder().decode(client.received()) : client.output();
      assert(got.includes(data.replaceAll("\n", "\r\n")), `every byte up to the close (binary ${binary})`);
      assert(client.metas().includes("coda:exit:3"));
    }
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("serve: an upload lands in the shell's directory and coda-download sends a file back", async () => {
  const home = await Deno.makeTempDir();
  const server = await serve(home);
  try {
    const client = new TestClient(server.clientUrl, undefined, { binary: true });
    await client.opened;
    await waitFor(() => client.metas()[0]?.startsWith("coda:session:"), "session meta");
    const sessionId = client.metas()[0].slice("coda:session:".length);
    const data = crypto.getRandomValues(new Uint8Array(60_000));
    const done = await client.upload(sessionId, 1, "up.bin", data);
    assertEquals(done?.path, `${home}/up.bin`);
    assertEquals(await Deno.readFile(`${home}/up.bin`), data);
    client.send({ type: "stdin", sessionId, data: "coda-download up.bin\r" });
    const offer = await client.next((m) => m.type === "download-offer", "the offer");
    client.send({ type: "download-accept", sessionId, transferId: offer.transferId });
    await client.next((m) => m.type === "download-done", "the download");
    assertEquals(client.downloads.map((piece) => [...piece.data]).flat(), [...data]);
    await client.close();
  } finally {
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});
