import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { TRANSFER_CHUNK_BYTES, TRANSFER_WINDOW_BYTES } from "@coda/relay/protocol";
import { FileTransfers, formatBytes, writeFailure } from "./file_transfer.ts";
import { DownloadMarks } from "./download_command.ts";
import { CollectingSink, silentLogger, waitFor } from "./testing.ts";

const sessionId = "sess_transfer_1";
const clientId = "client-1";

async function setup(maxBytes?: number) {
  const dir = await Deno.makeTempDir({ prefix: "coda-transfer-" });
  const sink = new CollectingSink();
  const transfers = new FileTransfers({ sessionId, sink, log: silentLogger, cwd: () => dir, maxBytes });
  return {
    dir,
    sink,
    transfers,
    /** The transfer messages sent so far (no output, no file pieces). */
    sent: () => sink.frames.filter((f) => f.type !== "download-data"),
    async [Symbol.asyncDispose]() {
      await transfers.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function random(bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  }
  return data;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const entries = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

/** Uploads `data` as `name` in pieces, as a client within its window would. */
async function upload(transfers: FileTransfers, transferId: number, name: string, data: Uint8Array) {
  await transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId,
    name,
    size: data.byteLength,
  });
  for (let offset = 0; offset < data.byteLength; offset += TRANSFER_CHUNK_BYTES) {
    const piece = data.subarray(offset, offset + TRANSFER_CHUNK_BYTES);
    await transfers.handle({ type: "upload-data", sessionId, clientId, transferId, offset, data: piece });
  }
}

Deno.test("an upload is written under a temporary name, acknowledged piece by piece, then appears whole", async () => {
  await using t = await setup();
  const data = random(300_000);
  await upload(t.transfers, 7, "report.bin", data);
  const done = await waitFor(() => t.sent().find((f) => f.type === "upload-done"), "upload-done");
  assertEquals(done, {
    type: "upload-done",
    sessionId,
    clientId,
    transferId: 7,
    path: join(t.dir, "report.bin"),
  });
  const acks = t.sent().filter((f) => f.type === "upload-ack").map((f) => (f as { offset: number }).offset);
  assertEquals(acks, [65536, 131072, 196608, 262144, 300000]);
  assertEquals(sha256(await Deno.readFile(join(t.dir, "report.bin"))), sha256(data));
  assertEquals(await entries(t.dir), ["report.bin"], "no temporary file left");
});

Deno.test("an empty upload makes an empty file", async () => {
  await using t = await setup();
  await upload(t.transfers, 1, "empty", new Uint8Array());
  await waitFor(() => t.sent().find((f) => f.type === "upload-done"), "upload-done");
  assertEquals((await Deno.stat(join(t.dir, "empty"))).size, 0);
});

Deno.test("upload names that are not a plain base name are refused, and nothing is written", async () => {
  await using t = await setup();
  const names = [
    "../escape",
    "a/b",
    "",
    "..",
    ".",
    "bell\u0007",
    "new\nline",
    "back\\slash",
    "x".repeat(256),
  ];
  for (const [i, name] of names.entries()) {
    await t.transfers.handle({ type: "upload-start", sessionId, clientId, transferId: i + 1, name, size: 3 });
  }
  const errors = t.sent().filter((f) => f.type === "transfer-error");
  assertEquals(errors.length, names.length);
  for (const error of errors) assert((error as { message: string }).message.includes("nothing was written"));
  assertEquals(await entries(t.dir), []);
  assertEquals(t.transfers.active, { uploads: 0, downloads: 0 });
});

Deno.test("an upload onto an existing name is refused up front, and one that appeared meanwhile never replaces it", async () => {
  await using t = await setup();
  await Deno.writeTextFile(join(t.dir, "taken.txt"), "mine");
  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 1,
    name: "taken.txt",
    size: 4,
  });
  const refused = t.sent().find((f) => f.type === "transfer-error") as { message: string };
  assert(refused.message.includes("taken.txt already exists in"), refused.message);

  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 2,
    name: "late.txt",
    size: 4,
  });
  await Deno.writeTextFile(join(t.dir, "late.txt"), "came first");
  const data = new TextEncoder().encode("abcd");
  await t.transfers.handle({ type: "upload-data", sessionId, clientId, transferId: 2, offset: 0, data });
  const late = await waitFor(
    () => t.sent().find((f) => f.type === "transfer-error" && f.transferId === 2),
    "the conflict",
  ) as { message: string };
  assert(late.message.includes("appeared meanwhile"), late.message);
  assertEquals(await Deno.readTextFile(join(t.dir, "late.txt")), "came first");
  assertEquals(await entries(t.dir), ["late.txt", "taken.txt"]);
});

Deno.test("the size cap is checked from the declared size and while receiving; a lost piece ends the upload", async () => {
  await using t = await setup(1000);
  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 1,
    name: "big",
    size: 1001,
  });
  const cap = t.sent().find((f) => f.type === "transfer-error") as { message: string };
  assert(cap.message.includes("over the 1000 bytes cap (CODA_TRANSFER_MAX_BYTES)"), cap.message);

  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 2,
    name: "liar",
    size: 10,
  });
  await t.transfers.handle({
    type: "upload-data",
    sessionId,
    clientId,
    transferId: 2,
    offset: 0,
    data: random(11),
  });
  const liar = await waitFor(
    () => t.sent().find((f) => f.type === "transfer-error" && f.transferId === 2),
    "more",
  );
  assert((liar as { message: string }).message.includes("more bytes than the 10 announced"));

  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 3,
    name: "gap",
    size: 10,
  });
  await t.transfers.handle({
    type: "upload-data",
    sessionId,
    clientId,
    transferId: 3,
    offset: 5,
    data: random(5),
  });
  const gap = await waitFor(
    () => t.sent().find((f) => f.type === "transfer-error" && f.transferId === 3),
    "gap",
  );
  assert((gap as { message: string }).message.includes("bytes from 0 went missing"));
  await waitFor(async () => (await entries(t.dir)).length === 0, "partial files removed");
});

Deno.test("a client that goes away takes its partial uploads with it", async () => {
  await using t = await setup();
  await t.transfers.handle({
    type: "upload-start",
    sessionId,
    clientId,
    transferId: 1,
    name: "half",
    size: 100,
  });
  await t.transfers.handle({
    type: "upload-data",
    sessionId,
    clientId,
    transferId: 1,
    offset: 0,
    data: random(50),
  });
  await waitFor(() => t.sent().some((f) => f.type === "upload-ack"), "the first piece written");
  assertEquals((await entries(t.dir)).length, 1);
  t.transfers.clientGone(clientId);
  await waitFor(async () => (await entries(t.dir)).length === 0, "the partial file removed");
  assertEquals(t.transfers.active.uploads, 0);
});

Deno.test("a download is offered to every client, then sent to the one that accepts within its window", async () => {
  await using t = await setup();
  const data = random(TRANSFER_WINDOW_BYTES * 2 + 1234);
  const path = join(t.dir, "out.bin");
  await Deno.writeFile(path, data);
  await t.transfers.offer(path);
  const offer = t.sent().find((f) => f.type === "download-offer");
  assertEquals(offer, {
    type: "download-offer",
    sessionId,
    transferId: 1,
    name: "out.bin",
    size: data.byteLength,
  });

  await t.transfers.handle({ type: "download-accept", sessionId, clientId, transferId: 1 });
  const pieces = () =>
    t.sink.frames.filter((f) => f.type === "download-data") as unknown as {
      offset: number;
      data: Uint8Array;
    }[];
  await waitFor(() => pieces().length === TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES, "a window of pieces");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assertEquals(
    pieces().length,
    TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES,
    "nothing past the window unacked",
  );
  let acked = 0;
  while (!t.sent().some((f) => f.type === "download-done")) {
    const sent = pieces().reduce((sum, p) => sum + p.data.byteLength, 0);
    if (sent > acked) {
      acked = sent;
      await t.transfers.handle({ type: "download-ack", sessionId, clientId, transferId: 1, offset: acked });
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const received = new Uint8Array(data.byteLength);
  for (const piece of pieces()) received.set(piece.data, piece.offset);
  assertEquals(sha256(received), sha256(data));
  assertEquals(t.sent().find((f) => f.type === "download-done"), {
    type: "download-done",
    sessionId,
    clientId,
    transferId: 1,
    size: data.byteLength,
  });
  assertEquals(t.transfers.active.downloads, 0);
});

Deno.test("a download stops when its client goes, and waits while the link is congested", async () => {
  await using t = await setup();
  const path = join(t.dir, "big.bin");
  await Deno.writeFile(path, random(TRANSFER_WINDOW_BYTES * 4));
  await t.transfers.offer(path);
  t.sink.buffered = 2 * 1024 * 1024;
  await t.transfers.handle({ type: "download-accept", sessionId, clientId, transferId: 1 });
  await waitFor(() => t.transfers.active.downloads === 1, "the download");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assertEquals(t.sink.frames.filter((f) => f.type === "download-data").length, 0, "nothing while congested");
  t.sink.buffered = 0;
  await waitFor(() => t.sink.frames.some((f) => f.type === "download-data"), "pieces once the link drains");
  t.transfers.clientGone(clientId);
  assertEquals(t.transfers.active.downloads, 0);
  const count = t.sink.frames.filter((f) => f.type === "download-data").length;
  await t.transfers.handle({ type: "download-ack", sessionId, clientId, transferId: 1, offset: 1 << 30 });
  assertEquals(
    t.sink.frames.filter((f) => f.type === "download-data").length,
    count,
    "nothing after it went",
  );
  assert(!t.sent().some((f) => f.type === "download-done"));
});

Deno.test("only a regular file within the cap is offered; an unknown download is a clear error", async () => {
  await using t = await setup(10);
  await Deno.writeFile(join(t.dir, "eleven"), random(11));
  await t.transfers.offer(t.dir);
  await t.transfers.offer(join(t.dir, "eleven"));
  await t.transfers.offer(join(t.dir, "missing"));
  const metas = t.sink.metas(sessionId);
  assertEquals(metas.length, 3);
  assert(metas[0].includes("is not a regular file"), metas[0]);
  assert(metas[1].includes("over the 10 bytes cap"), metas[1]);
  assert(metas[2].startsWith("coda:error:coda-download: cannot read"), metas[2]);
  assert(!t.sent().some((f) => f.type === "download-offer"));
  await t.transfers.handle({ type: "download-accept", sessionId, clientId, transferId: 9 });
  const error = await waitFor(() => t.sent().find((f) => f.type === "transfer-error"), "the error");
  assertEquals((error as { direction: string }).direction, "download");
});

Deno.test({
  name: "the error of a write to a full device reads as no space left",
  ignore: !(await Deno.stat("/dev/full").then(() => true, () => false)),
  async fn() {
    const full = await Deno.open("/dev/full", { write: true });
    try {
      const error = await full.write(new Uint8Array(16)).then(() => undefined, (error) => error);
      assertEquals(writeFailure(error), "no space left on the device; the partial file was removed");
    } finally {
      full.close();
    }
  },
});

Deno.test("write failures name a full disk and a full quota plainly", () => {
  const enospc = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
  assertEquals(writeFailure(enospc), "no space left on the device; the partial file was removed");
  assertEquals(
    writeFailure(new Error("Disk quota exceeded (os error 122)")),
    "the disk quota is exceeded; the partial file was removed",
  );
  assertEquals(formatBytes(100 * 1024 * 1024), "100.0 MiB");
});

Deno.test("download marks are stripped from the output, whole or split; only the session's key offers", () => {
  const offers: string[] = [];
  const marks = new DownloadMarks("k3y", (path) => offers.push(path));
  const hex = (text: string) =>
    Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
  const mark = (key: string, path: string) => `\x1b]5379;coda-download;${key};${hex(path)}\x07`;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const through = (text: string) => decoder.decode(marks.filter(encoder.encode(text)));

  assertEquals(through(`before${mark("k3y", "/tmp/a b;\x07c")}after`), "beforeafter");
  assertEquals(offers, ["/tmp/a b;\x07c"]);
  assertEquals(through(`forged${mark("wrong", "/etc/passwd")}!`), "forged!", "stripped, never acted on");
  assertEquals(offers.length, 1);
  const whole = `x${mark("k3y", "/split")}y`;
  assertEquals(through(whole.slice(0, 10)), "x");
  assert(marks.holding);
  assertEquals(through(whole.slice(10)), "y");
  assertEquals(offers, ["/tmp/a b;\x07c", "/split"]);
  assertEquals(through("\x1b]0;title\x07 plain"), "\x1b]0;title\x07 plain", "other sequences pass");
  assertEquals(through("\x1b]53"), "");
  assertEquals(decoder.decode(marks.flush()), "\x1b]53", "a start that never completed is output");
});
