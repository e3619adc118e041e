import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CloseCode, CloseReason, encodeInputFrame, MetaLine } from "./protocol.ts";
import { clientToken, connectClient, refusedUpgrade, relayTest, uniqueId, waitFor } from "./testing.ts";

relayTest(
  "viewer: a share's watch-only link gets the replay and live output, and nothing it sends reaches the runner",
  async (h) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const sessionId = uniqueId("s");
    const runner = await h.runner(runnerId, userId);
    const owner = await connectClient(h, { userId, sessionId, runnerId }, { cols: 100, rows: 30 });
    await owner.meta(MetaLine.session(sessionId));
    runner.write(sessionId, "before the viewer\r\n");
    await owner.waitOutput("before the viewer");

    const shareId = uniqueId("share");
    h.backend.shares.add(shareId);
    const viewer = await connectClient(
      h,
      { userId, sessionId, runnerId, share: shareId, viewer: "guest@example.com", resume: true },
      { cols: 10, rows: 5, binary: true },
    );
    await viewer.waitOutput("before the viewer");
    const viewerAttach = runner.received.findLast((m) => m.type === "attach")!;
    assertEquals([viewerAttach.cols, viewerAttach.rows, viewerAttach.resume], [undefined, undefined, true]);
    const forged = [
      { type: "stdin", sessionId, data: "rm -rf ~\r" },
      { type: "resize", sessionId, cols: 1, rows: 1 },
      { type: "kill", sessionId },
      { type: "record", sessionId, on: true },
      { type: "pick-cwd", sessionId, path: "/" },
      { type: "ack", sessionId, offset: 1 },
    ];
    for (const message of forged) viewer.send(message);
    viewer.send(encodeInputFrame({ sessionId, data: new TextEncoder().encode("echo pwned\r") }));
    runner.write(sessionId, "live for both\r\n");
    await viewer.waitOutput("live for both");
    await owner.waitOutput("live for both");
    // The owner's keystroke, sent after all of the viewer's frames, arrives; none of the viewer's did.
    owner.send({ type: "stdin", sessionId, data: "ls\r" });
    await waitFor(() => runner.sessions.get(sessionId)?.stdin.includes("ls\r"), "the owner's keystroke");
    assertEquals(runner.sessions.get(sessionId)!.stdin, ["ls\r"]);
    const kinds = runner.received.map((m) => m.type);
    for (const kind of ["resize", "kill", "record", "pick-cwd"]) assert(!kinds.includes(kind), `no ${kind}`);
    assert(!viewer.isClosed, "dropping is not a strike: a page that sends a resize keeps watching");
    const metrics = await h.metrics();
    assert(metrics.includes('relay_frames_dropped_total{reason="viewer_input"} 7'), metrics);
    assertEquals(
      h.backend.viewerReports.map(({ shareId, viewer, online }) => ({ shareId, viewer, online })),
      [
        { shareId, viewer: "guest@example.com", online: true },
      ],
    );
    await viewer.close();
    await waitFor(() => h.backend.viewerReports.length === 2, "the viewer's going");
    assertEquals(h.backend.viewerReports[1].online, false);
  },
);

relayTest(
  "viewer: revoking a share closes its viewers 4403 and refuses its tokens; other links stay",
  async (h) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const sessionId = uniqueId("s");
    await h.runner(runnerId, userId);
    const shareId = uniqueId("share");
    const other = uniqueId("share");
    h.backend.shares.add(shareId);
    h.backend.shares.add(other);
    const claims = { userId, sessionId, runnerId, resume: true };
    const owner = await connectClient(h, claims);
    const viewer = await connectClient(h, { ...claims, share: shareId });
    const stays = await connectClient(h, { ...claims, share: other });
    for (const peer of [owner, viewer, stays]) await peer.meta(MetaLine.session(sessionId));
    await h.backend.revokeShare(shareId);
    assertEquals(await viewer.closed, { code: CloseCode.REVOKED, reason: CloseReason.SHARE_REVOKED });
    assert(!owner.isClosed && !stays.isClosed);
    const refused = await refusedUpgrade(
      `${h.relay.url}/client?token=${await clientToken({ ...claims, share: shareId })}`,
    );
    assertEquals([refused.status, refused.body.error], [403, "share revoked or expired"]);
  },
);

relayTest("viewer: a share's viewers have a cap of their own and never lock the owner out", async (h) => {
  const userId = uniqueId("user");
  const runnerId = uniqueId("runner");
  const sessionId = uniqueId("s");
  await h.runner(runnerId, userId);
  const shareId = uniqueId("share");
  h.backend.shares.add(shareId);
  const claims = { userId, sessionId, runnerId, resume: true };
  const viewers = [];
  for (let i = 0; i < 3; i++) viewers.push(await connectClient(h, { ...claims, share: shareId }));
  await Promise.all(viewers.map((viewer) => viewer.meta(MetaLine.session(sessionId))));
  const fourth = await refusedUpgrade(
    `${h.relay.url}/client?token=${await clientToken({ ...claims, share: shareId })}`,
  );
  assertEquals([fourth.status, fourth.body.error], [429, "too many viewers of this share"]);
  // The owner still opens both of theirs.
  const owner = [await connectClient(h, claims), await connectClient(h, claims)];
  await Promise.all(owner.map((client) => client.meta(MetaLine.session(sessionId))));
}, { limits: { maxViewersPerShare: 3, maxClientsPerUser: 2 } });
