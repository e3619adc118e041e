/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  type ClientMessage,
  decodeBinaryFrame,
  type FileFrame,
  TRANSFER_CHUNK_BYTES,
  TRANSFER_WINDOW_BYTES,
} from "@coda/relay/protocol";
import { FileTransfers, type Transfer } from "./file_transfers.ts";

const sessionId = "sess_0123456789";

function setup() {
  const sent: ClientMessage[] = [];
  const frames: FileFrame[] = [];
  const saved: { name: string; file: Blob }[] = [];
  let shown: Transfer[] = [];
  let online = true;
  const transfers = new FileTransfers({
    link: {
      sessionId: () => online ? sessionId : undefined,
      send: (message) => sent.push(message),
      sendFrame: (frame) => {
        const decoded = decodeBinaryFrame(frame);
        if (decoded.ok && decoded.value.type === "upload") frames.push(decoded.value);
      },
    },
    onChange: (list) => shown = list,
    save: (name, file) => saved.push({ name, file }),
  });
  return {
    transfers,
    sent,
    frames,
    saved,
    shown: () => shown,
    goOffline: () => online = false,
  };
}

/** Lets the file slices' reads settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

Deno.test("an upload sends a window of pieces, then one more per acknowledged piece, and shows where it went", async () => {
  const t = setup();
  const size = TRANSFER_WINDOW_BYTES * 2 + 10;
  t.transfers.upload(new File([new Uint8Array(size)], "big.bin"));
  assertEquals(t.sent[0], { type: "upload-start", sessionId, transferId: 1, name: "big.bin", size });
  await settle();
  assertEquals(t.frames.length, TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES, "one window, no more");
  t.transfers.onMessage({ type: "upload-ack", sessionId, transferId: 1, offset: TRANSFER_CHUNK_BYTES });
  await settle();
  assertEquals(t.frames.length, TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES + 1);
  assertEquals(t.shown()[0].done, TRANSFER_CHUNK_BYTES);
  t.transfers.onMessage({ type: "upload-ack", sessionId, transferId: 1, offset: size });
  await settle();
  const end = t.frames.at(-1)!;
  assertEquals(end.offset + end.data.byteLength, size, "every byte sent");
  t.transfers.onMessage({ type: "upload-done", sessionId, transferId: 1, path: "/home/me/big.bin" });
  assertEquals([t.shown()[0].status, t.shown()[0].detail], ["done", "/home/me/big.bin"]);
});

Deno.test("a bad name fails before anything is sent; a runner's refusal and a lost link fail with their reason", async () => {
  const t = setup();
  t.transfers.upload(new File(["x"], "a\u0007b"));
  assertEquals(t.sent.length, 0);
  assertEquals(t.shown()[0].status, "failed");
  t.transfers.upload(new File(["x"], "taken.txt"));
  t.transfers.onMessage({
    type: "transfer-error",
    sessionId,
    transferId: 2,
    direction: "upload",
    message: "taken.txt already exists",
  });
  assertEquals(t.shown()[1].detail, "taken.txt already exists");
  t.transfers.upload(new File([new Uint8Array(TRANSFER_WINDOW_BYTES * 3)], "long.bin"));
  await settle();
  t.transfers.linkLost();
  assertEquals([t.shown()[2].status, t.shown()[2].detail], ["failed", "the connection dropped; try again"]);
});

Deno.test("a download is offered, saved only after accept, each piece acknowledged", async () => {
  const t = setup();
  t.transfers.onMessage({ type: "download-offer", sessionId, transferId: 5, name: "out.txt", size: 6 });
  assertEquals(t.shown()[0].status, "offered");
  assertEquals(t.sent.length, 0, "nothing asked before Save");
  t.transfers.accept("download-5");
  assertEquals(t.sent[0], { type: "download-accept", sessionId, transferId: 5 });
  const piece = (offset: number, text: string): FileFrame => ({
    type: "download",
    sessionId,
    transferId: 5,
    offset,
    data: new TextEncoder().encode(text),
  });
  t.transfers.onFrame(piece(0, "hel"));
  t.transfers.onFrame(piece(3, "lo\n"));
  await settle();
  assertEquals(t.sent.at(-1), { type: "download-ack", sessionId, transferId: 5, offset: 6 });
  t.transfers.onMessage({ type: "download-done", sessionId, transferId: 5, size: 6 });
  assertEquals(t.saved.length, 1);
  assertEquals([t.saved[0].name, await t.saved[0].file.text()], ["out.txt", "hello\n"]);

  t.transfers.onMessage({ type: "download-offer", sessionId, transferId: 6, name: "no.txt", size: 1 });
  t.transfers.dismiss("download-6");
  assert(!t.shown().some((transfer) => transfer.key === "download-6"), "dismissed");
  t.goOffline();
  t.transfers.onMessage({ type: "download-offer", sessionId, transferId: 7, name: "late.txt", size: 1 });
  t.transfers.accept("download-7");
  assertEquals(t.shown().find((transfer) => transfer.key === "download-7")?.status, "failed");
});
