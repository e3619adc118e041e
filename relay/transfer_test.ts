import { deepEqual as assertEquals, equal, ok as assert } from "node:assert/strict";
import {
  CloseCode,
  CloseReason,
  encodeFileFrame,
  type FileFrame,
  MetaLine,
  TRANSFER_CHUNK_BYTES,
  TRANSFER_WINDOW_BYTES,
} from "./protocol.ts";
import { connectClient, type RelayHarness, relayTest, uniqueId, waitFor } from "./testing.ts";

/** A binary runner that takes transfers, a session of it and the owner's coda.v2 client, live. */
async function ownerAndRunner(h: RelayHarness) {
  const userId = uniqueId("user");
  const runnerId = uniqueId("runner");
  const sessionId = uniqueId("s");
  const runner = await h.runner(runnerId, userId, "header", true);
  await runner.welcome();
  runner.send({ type: "binary", transfers: true });
  const owner = await connectClient(h, { userId, sessionId, runnerId }, { binary: true });
  await owner.meta(MetaLine.session(sessionId));
  const ownerId = runner.received.findLast((m) => m.type === "attach")!.clientId as string;
  return { userId, runnerId, sessionId, runner, owner, ownerId };
}

/** A coda.v2 viewer of the session, through a share of its own, attached. */
async function viewerOf(h: RelayHarness, of: { userId: string; runnerId: string; sessionId: string }) {
  const shareId = uniqueId("share");
  h.backend.shares.add(shareId);
  const viewer = await connectClient(h, { ...of, share: shareId, resume: true }, { binary: true });
  await viewer.meta(MetaLine.session(of.sessionId));
  return viewer;
}

const piece = (sessionId: string, transferId: number, offset: number, bytes = TRANSFER_CHUNK_BYTES) =>
  encodeFileFrame({ type: "upload", sessionId, transferId, offset, data: new Uint8Array(bytes) });
const uploadsAt = (frames: FileFrame[] | unknown[]) =>
  (frames as FileFrame[]).filter((frame) => frame.type === "upload");

relayTest(
  "transfer: an owner's upload reaches the runner naming its client; a viewer's is dropped and counted like its stdin",
  async (h) => {
    const { userId, runnerId, sessionId, runner, owner, ownerId } = await ownerAndRunner(h);
    owner.send({
      type: "upload-start",
      sessionId,
      transferId: 1,
      name: "a.txt",
      size: 5,
      clientId: "forged",
    });
    owner.send(
      encodeFileFrame({ type: "upload", sessionId, transferId: 1, offset: 0, data: new Uint8Array(5) }),
    );
    const start = await runner.next((m) => m.type === "upload-start", "upload-start");
    assertEquals(start, {
      type: "upload-start",
      sessionId,
      transferId: 1,
      name: "a.txt",
      size: 5,
      clientId: ownerId,
    });
    await waitFor(() => uploadsAt(runner.frames).length === 1, "the piece");
    assertEquals(uploadsAt(runner.frames)[0].clientId, ownerId, "the relay names the client");
    runner.send({ type: "upload-ack", sessionId, clientId: ownerId, transferId: 1, offset: 5 });
    runner.send({
      type: "upload-done",
      sessionId,
      clientId: ownerId,
      transferId: 1,
      path: "/home/test/a.txt",
    });
    assertEquals(await owner.next((m) => m.type === "upload-done"), {
      type: "upload-done",
      sessionId,
      transferId: 1,
      path: "/home/test/a.txt",
    });

    const viewer = await viewerOf(h, { userId, runnerId, sessionId });
    viewer.send({ type: "upload-start", sessionId, transferId: 2, name: "evil", size: 5 });
    viewer.send(piece(sessionId, 2, 0, 5));
    viewer.send({ type: "download-accept", sessionId, transferId: 1 });
    owner.send({ type: "upload-cancel", sessionId, transferId: 9 });
    await runner.next((m) => m.type === "upload-cancel", "the owner's frame, sent after the viewer's");
    assertEquals(
      runner.received.filter((m) => m.type === "upload-start").length,
      1,
      "no viewer upload-start",
    );
    assertEquals(runner.received.filter((m) => m.type === "download-accept").length, 0);
    assertEquals(uploadsAt(runner.frames).length, 1, "no viewer piece");
    assert(!viewer.isClosed, "dropped, not a strike");
    const metrics = await h.metrics();
    assert(metrics.includes('relay_frames_dropped_total{reason="viewer_input"} 3'), metrics);
  },
);

relayTest(
  "transfer: download offers and pieces reach owners' coda.v2 clients only, never a viewer or a spec-only client",
  async (h) => {
    const { userId, runnerId, sessionId, runner, owner, ownerId } = await ownerAndRunner(h);
    const json = await connectClient(h, { userId, sessionId, runnerId });
    await json.meta(MetaLine.session(sessionId));
    const viewer = await viewerOf(h, { userId, runnerId, sessionId });
    const viewerId = runner.received.findLast((m) => m.type === "attach")!.clientId as string;

    runner.send({ type: "download-offer", sessionId, transferId: 4, name: "out.bin", size: 3 });
    const data = new Uint8Array([1, 2, 3]);
    runner.send(
      encodeFileFrame({ type: "download", sessionId, clientId: viewerId, transferId: 4, offset: 0, data }),
    );
    runner.send(
      encodeFileFrame({ type: "download", sessionId, clientId: ownerId, transferId: 4, offset: 0, data }),
    );
    runner.send({ type: "download-done", sessionId, clientId: ownerId, transferId: 4, size: 3 });
    runner.write(sessionId, "after\r\n");
    for (const client of [owner, json, viewer]) await client.waitOutput("after");
    assertEquals(owner.received.find((m) => m.type === "download-offer"), {
      type: "download-offer",
      sessionId,
      transferId: 4,
      name: "out.bin",
      size: 3,
    });
    const pieces = owner.frames.filter((frame) => frame.type === "download");
    assertEquals(pieces.map((frame) => ({ ...frame, data: [...frame.data] })), [
      { type: "download", sessionId, transferId: 4, offset: 0, data: [1, 2, 3] },
    ]);
    assert(owner.received.some((m) => m.type === "download-done"));
    for (const other of [json, viewer]) {
      assert(!other.received.some((m) => String(m.type).startsWith("download")), "nothing of the download");
      assert(!other.frames.some((frame) => frame.type === "download"));
    }
  },
);

relayTest(
  "transfer: a client that ignores the window is closed 4429 and the runner never got more than the window",
  async (h) => {
    const { sessionId, runner, owner } = await ownerAndRunner(h);
    owner.send({ type: "upload-start", sessionId, transferId: 1, name: "flood", size: 64 * 1024 * 1024 });
    const pieces = TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES;
    // Never waiting for an ack: the piece past the window is the last one the relay takes (sending on
    // past it only makes the socket's close abnormal, the relay reads nothing more).
    for (let i = 0; i <= pieces; i++) owner.send(piece(sessionId, 1, i * TRANSFER_CHUNK_BYTES));
    assertEquals(await owner.closed, {
      code: CloseCode.TRANSFER_WINDOW,
      reason: CloseReason.TRANSFER_WINDOW,
    });
    await runner.next((m) => m.type === "detach", "the runner told the client left");
    equal(uploadsAt(runner.frames).length, pieces, "exactly one window reached the runner");
    const metrics = await h.metrics();
    assert(metrics.includes('relay_frames_dropped_total{reason="transfer_window"} 1'), metrics);
  },
);

relayTest(
  "transfer: an acknowledged upload keeps flowing past the window; pieces of no upload are strikes",
  async (h) => {
    const { sessionId, runner, owner, ownerId } = await ownerAndRunner(h);
    const size = TRANSFER_WINDOW_BYTES * 3;
    owner.send({ type: "upload-start", sessionId, transferId: 1, name: "paced", size });
    for (let offset = 0; offset < size; offset += TRANSFER_CHUNK_BYTES) {
      owner.send(piece(sessionId, 1, offset));
      const end = offset + TRANSFER_CHUNK_BYTES;
      await waitFor(() => uploadsAt(runner.frames).length === end / TRANSFER_CHUNK_BYTES, "the piece");
      runner.send({ type: "upload-ack", sessionId, clientId: ownerId, transferId: 1, offset: end });
    }
    owner.send(piece(sessionId, 77, 0));
    owner.send(piece(sessionId, 1, 5));
    owner.sendInput(sessionId, "still here");
    await waitFor(() => runner.stdin(sessionId) === "still here", "the keystrokes");
    equal(uploadsAt(runner.frames).length, size / TRANSFER_CHUNK_BYTES, "the unknown pieces went nowhere");
    assert(!owner.isClosed);
    const metrics = await h.metrics();
    assert(metrics.includes('reason="unexpected_upload"'), metrics);
  },
);

relayTest(
  "transfer: refused with a clear transfer-error by a runner without transfers, and past the uploads cap",
  async (h) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const sessionId = uniqueId("s");
    const runner = await h.runner(runnerId, userId, "header", true);
    const client = await connectClient(h, { userId, sessionId, runnerId }, { binary: true });
    await client.meta(MetaLine.session(sessionId));
    client.send({ type: "upload-start", sessionId, transferId: 1, name: "x", size: 1 });
    const refused = await client.next((m) => m.type === "transfer-error");
    assertEquals(refused, {
      type: "transfer-error",
      sessionId,
      transferId: 1,
      direction: "upload",
      message: "this runner does not support file transfer; update coda-runner",
    });
    runner.send({ type: "binary", transfers: true });
    runner.send({ type: "ping", t: 1 });
    await runner.next((m) => m.type === "pong", "the relay to have read the runner's binary");
    for (let id = 2; id <= 7; id++) {
      client.send({ type: "upload-start", sessionId, transferId: id, name: "x", size: 1 });
    }
    const capped = await client.next((m) => m.type === "transfer-error" && m.transferId === 6);
    equal(capped.message, "at most 4 uploads at once");
    await client.next((m) => m.type === "transfer-error" && m.transferId === 7);
    equal(runner.received.filter((m) => m.type === "upload-start").length, 4);
  },
);
