import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  decodeClientMessage,
  decodeRelayToRunner,
  decodeRunnerToRelay,
  decodeServerMessage,
  encode,
  fileNameProblem,
} from "./protocol.ts";

Deno.test("ping is a client message without a sessionId, pong one a client receives; both echo t", () => {
  assertEquals(decodeClientMessage(encode({ type: "ping", t: 1234.5 })), {
    ok: true,
    value: { type: "ping", t: 1234.5 },
  });
  assertEquals(decodeClientMessage('{"type":"ping"}'), { ok: true, value: { type: "ping" } });
  assertEquals(decodeServerMessage(encode({ type: "pong", t: 1234.5 })), {
    ok: true,
    value: { type: "pong", t: 1234.5 },
  });
  assert(!decodeClientMessage('{"type":"ping","t":"soon"}').ok, "t is a number");
  // The runner's heartbeat is the same message.
  assertEquals(decodeRunnerToRelay('{"type":"ping","t":7}'), { ok: true, value: { type: "ping", t: 7 } });
});

Deno.test("a spec-only client's messages decode as before the heartbeat", () => {
  const stdin = { type: "stdin", sessionId: "sess_0123456789", data: "ls\r" } as const;
  assertEquals(decodeClientMessage(encode(stdin)), { ok: true, value: stdin });
  const meta = { type: "meta", sessionId: "sess_0123456789", data: "coda:session:sess_0123456789" } as const;
  assertEquals(decodeServerMessage(encode(meta)), { ok: true, value: meta });
  assert(!decodeClientMessage('{"type":"stdin","data":"x"}').ok, "stdin still needs its sessionId");
});

Deno.test("transfer messages round-trip each way; a transfer id is 1 to 2^32 - 1", () => {
  const sessionId = "sess_0123456789";
  const fromClient = [
    { type: "upload-start", sessionId, transferId: 1, name: "notes.txt", size: 12 },
    { type: "upload-cancel", sessionId, transferId: 1 },
    { type: "download-accept", sessionId, transferId: 2 },
    { type: "download-ack", sessionId, transferId: 2, offset: 65536 },
    { type: "download-cancel", sessionId, transferId: 2 },
  ] as const;
  for (const message of fromClient) {
    assertEquals(decodeClientMessage(encode(message)), { ok: true, value: message });
    const toRunner = { ...message, clientId: "c-1" };
    assertEquals(decodeRelayToRunner(encode(toRunner)), { ok: true, value: toRunner });
  }
  const fromRunner = [
    { type: "upload-ack", sessionId, transferId: 1, offset: 12, clientId: "c-1" },
    { type: "upload-done", sessionId, transferId: 1, path: "/home/me/notes.txt", clientId: "c-1" },
    { type: "download-offer", sessionId, transferId: 2, name: "out.bin", size: 3 },
    { type: "download-done", sessionId, transferId: 2, size: 3, clientId: "c-1" },
    {
      type: "transfer-error",
      sessionId,
      transferId: 2,
      direction: "download",
      message: "gone",
      clientId: "c-1",
    },
  ] as const;
  for (const message of fromRunner) {
    assertEquals(decodeRunnerToRelay(encode(message)), { ok: true, value: message });
    const { clientId: _, ...forClient } = message as typeof message & { clientId?: string };
    assertEquals(decodeServerMessage(encode(forClient as never)), { ok: true, value: forClient });
  }
  for (const transferId of [0, -1, 2 ** 32, 1.5]) {
    assert(
      !decodeClientMessage(encode({ type: "upload-cancel", sessionId, transferId })).ok,
      `${transferId}`,
    );
  }
  assertEquals(decodeRunnerToRelay('{"type":"binary","transfers":true}'), {
    ok: true,
    value: { type: "binary", transfers: true },
  });
});

Deno.test("file names: a plain base name only", () => {
  for (const name of ["notes.txt", ".env", "résumé (1).pdf", "a".repeat(255), "日本語.txt"]) {
    assertEquals(fileNameProblem(name), undefined, name);
  }
  for (
    const name of [
      "",
      ".",
      "..",
      "../x",
      "a/b",
      "a\\b",
      "nul\u0000",
      "tab\t",
      "del\u007f",
      "c1\u009b",
      "é".repeat(128),
    ]
  ) {
    assert(fileNameProblem(name) !== undefined, JSON.stringify(name));
  }
});
