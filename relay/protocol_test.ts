import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { decodeClientMessage, decodeRunnerToRelay, decodeServerMessage, encode } from "./protocol.ts";

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
