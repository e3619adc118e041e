/**
 * File transfer end to end without a browser: the app and its relay, a real runner with real
 * shells, clients over real WebSockets speaking `coda.v2` as the browser does.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { MetaLine, TRANSFER_WINDOW_BYTES } from "@coda/relay/protocol";
import { startInProcessRunner, TestClient, testShellEnv, waitFor } from "./testing.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

function random(bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  }
  return data;
}

async function setup(options: { env?: Record<string, string>; transferMaxBytes?: number } = {}) {
  const app = await startTestApp();
  const home = await Deno.makeTempDir({ prefix: "coda-transfer-home-" });
  const user = await signup(app.url);
  const paired = await pairRunner(app.url, user.cookie);
  const runner = startInProcessRunner(app.relayUrl, paired.runnerToken, home, {
    env: { ...testShellEnv(home), ...options.env },
    transferMaxBytes: options.transferMaxBytes,
  });
  await waitFor(() => runner.link.connections > 0, "the runner to connect");
  const clients: TestClient[] = [];
  return {
    home,
    runner,
    /** A coda.v2 client of a new session (or of `sessionId`), once its shell answers. */
    async client(sessionId?: string) {
      const created = await createSession(app.url, user.cookie, {
        ideaId: "idea-1",
        runnerId: paired.runnerId,
        ...(sessionId ? { sessionId } : {}),
      });
      const client = new TestClient(`${app.relayUrl}/client?token=${created.token}`, undefined, {
        binary: true,
      });
      clients.push(client);
      await client.opened;
      client.send({ type: "stdin", sessionId: created.sessionId, data: "echo ready-$((6 * 7))\r" });
      await client.waitForOutput("ready-42");
      return { client, sessionId: created.sessionId };
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map((client) => client.close()));
      await runner.stop();
      await app.close();
      await Deno.remove(home, { recursive: true });
    },
  };
}

Deno.test("an upload through the relay lands in the shell's current directory, and sha256sum there matches", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.client();
  client.send({ type: "stdin", sessionId, data: "mkdir -p inbox && cd inbox\r" });
  await waitFor(() => client.metas().includes(MetaLine.cwd(join(t.home, "inbox"))), "the shell in inbox");
  const data = random(3 * 1024 * 1024 + 17);
  const done = await client.upload(sessionId, 1, "blob.bin", data);
  assertEquals(done, {
    type: "upload-done",
    sessionId,
    transferId: 1,
    path: join(t.home, "inbox", "blob.bin"),
  });
  client.send({ type: "stdin", sessionId, data: "sha256sum blob.bin; ls -A\r" });
  await client.waitForOutput(`${sha256(data)}  blob.bin`);
  await client.waitForOutput("blob.bin\r\n");
  assert(!client.output().includes(".coda-upload-"), "no temporary file left");

  const again = await client.upload(sessionId, 2, "blob.bin", random(10));
  assertEquals(again?.type, "transfer-error");
  assert(String(again?.message).includes("blob.bin already exists in"), String(again?.message));
  const traversal = await client.upload(sessionId, 3, "../escape.bin", random(10));
  assert(String(traversal?.message).includes("must not contain /"), String(traversal?.message));
  assert(!(await Deno.stat(join(t.home, "escape.bin")).catch(() => null)), "nothing outside");
});

Deno.test("coda-download offers a file to the browser; a forged mark that only passes through does nothing", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.client();
  const data = random(1024 * 1024 + 5);
  await Deno.writeFile(join(t.home, "data.bin"), data);
  // A hostile file holding a download mark of its own (without the session's key) shown with cat.
  const hex = Array.from(new TextEncoder().encode("/etc/passwd"), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  await Deno.writeTextFile(
    join(t.home, "hostile.txt"),
    `before\x1b]5379;coda-download;guess;${hex}\x07after\n`,
  );
  client.send({ type: "stdin", sessionId, data: "cat hostile.txt; coda-download data.bin\r" });
  await client.waitForOutput("coda-download: offered data.bin to your browser");
  await client.waitForOutput("beforeafter");
  const offer = await client.next((m) => m.type === "download-offer", "the offer");
  assertEquals(offer, {
    type: "download-offer",
    sessionId,
    transferId: 1,
    name: "data.bin",
    size: data.byteLength,
  });
  assertEquals(
    client.messages.filter((m) => m.type === "download-offer").length,
    1,
    "the forged mark offered nothing",
  );
  assertEquals(sha256(await client.download(sessionId, 1)), sha256(data));

  client.send({ type: "stdin", sessionId, data: "coda-download /nowhere; echo status=$?\r" });
  await client.waitForOutput("coda-download: /nowhere: not a regular file");
  await client.waitForOutput("status=1");
});

Deno.test("coda-download works in sh, without shell integration, and the cap refuses a larger file", async () => {
  await using t = await setup({ env: { SHELL: "/bin/sh" }, transferMaxBytes: 1000 });
  const { client, sessionId } = await t.client();
  await Deno.writeTextFile(join(t.home, "small.txt"), "hello from sh\n");
  await Deno.writeFile(join(t.home, "large.bin"), random(1001));
  client.send({ type: "stdin", sessionId, data: '"$CODA_BIN_DIR/coda-download" large.bin small.txt\r' });
  const offer = await client.next((m) => m.type === "download-offer", "the offer");
  assertEquals(offer.name, "small.txt");
  assertEquals(new TextDecoder().decode(await client.download(sessionId, 1)), "hello from sh\n");
  const refused = client.metas().find((line) => line.startsWith("coda:error:coda-download:"));
  assert(refused?.includes("large.bin is 1001 bytes, over the 1000 bytes cap"), refused);
  const upload = await client.upload(sessionId, 1, "big.bin", random(1001));
  assert(String(upload?.message).includes("over the 1000 bytes cap"), String(upload?.message));
});

Deno.test("a large download does not hold up keystroke echo, and stops when its tab closes", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.client();
  const data = random(32 * 1024 * 1024);
  await Deno.writeFile(join(t.home, "large.bin"), data);
  client.send({ type: "stdin", sessionId, data: "coda-download large.bin\r" });
  await client.next((m) => m.type === "download-offer", "the offer");
  const downloading = client.download(sessionId, 1);
  await waitFor(() => client.downloads.length > 0, "the first piece");
  client.send({ type: "stdin", sessionId, data: "echo typed-$((6 * 7))\r" });
  await client.waitForOutput("typed-42");
  assert(!client.messages.some((m) => m.type === "download-done"), "the echo came while the download ran");
  assertEquals(sha256(await downloading), sha256(data));

  // Another tab accepts, takes one window, and closes: the runner stops reading for it.
  const { client: tab } = await t.client(sessionId);
  tab.send({ type: "download-accept", sessionId, transferId: 1 });
  const transfers = t.runner.manager.transfers(sessionId)!;
  await waitFor(() => tab.downloads.length > 0 && transfers.active.downloads === 1, "the second download");
  await tab.close();
  await waitFor(() => transfers.active.downloads === 0, "the download to stop");
  const sent = tab.downloads.reduce((sum, piece) => sum + piece.data.byteLength, 0);
  assert(sent <= TRANSFER_WINDOW_BYTES, `${sent} bytes went to a tab that never acknowledged`);
});

Deno.test("keystroke echo keeps coming while a large upload runs", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.client();
  const data = random(24 * 1024 * 1024);
  const uploading = client.upload(sessionId, 1, "large.bin", data);
  await waitFor(() => client.messages.some((m) => m.type === "upload-ack"), "the upload under way");
  client.send({ type: "stdin", sessionId, data: "echo typed-$((6 * 7))\r" });
  await client.waitForOutput("typed-42");
  assert(!client.messages.some((m) => m.type === "upload-done"), "the echo came while the upload ran");
  assertEquals((await uploading)?.type, "upload-done");
  assertEquals(sha256(await Deno.readFile(join(t.home, "large.bin"))), sha256(data));
});

Deno.test("an upload from a tab that closes halfway is removed, and never appears under its name", async () => {
  await using t = await setup();
  const { client, sessionId } = await t.client();
  const data = random(4 * 1024 * 1024);
  await client.upload(sessionId, 1, "half.bin", data, 1024 * 1024);
  const transfers = t.runner.manager.transfers(sessionId)!;
  await waitFor(() => transfers.active.uploads === 1, "the upload under way");
  const partial = async () =>
    (await Array.fromAsync(Deno.readDir(t.home))).filter((e) => e.name.startsWith(".coda-upload-")).length;
  assertEquals(await partial(), 1);
  await client.close();
  await waitFor(
    async () => transfers.active.uploads === 0 && await partial() === 0,
    "the partial file removed",
  );
  assert(!(await Deno.stat(join(t.home, "half.bin")).catch(() => null)));
});
