import { deepEqual as assertEquals } from "node:assert/strict";
import { sessionEnv, userShell } from "./pty.ts";

Deno.test("a session's environment: terminal variables set, the runner's secrets and tmux client vars gone", () => {
  const env = sessionEnv({
    sessionId: "session-0001",
    ideaId: "idea-1",
    env: {
      PATH: "/bin",
      RUNNER_TOKEN: "secret",
      TMUX: "/tmp/tmux-0/default,1,0",
      TERM: "dumb",
      CODA_IDEA_ID: "old",
    },
  });
  assertEquals(env, {
    PATH: "/bin",
    TERM: "xterm-256color",
    COLORTERM: "truecolor",
    CODA_SESSION_ID: "session-0001",
    CODA_IDEA_ID: "idea-1",
  });
  assertEquals(
    sessionEnv({ sessionId: "session-0001", env: { CODA_IDEA_ID: "old" } }).CODA_IDEA_ID,
    undefined,
  );
});

Deno.test("the user's shell as a login shell; %COMSPEC% on Windows", () => {
  assertEquals(userShell({ SHELL: "/bin/zsh" }, "linux"), { file: "/bin/zsh", args: ["-l"] });
  assertEquals(userShell({}, "darwin"), { file: "/bin/bash", args: ["-l"] });
  assertEquals(userShell({ COMSPEC: "C:\\Windows\\cmd.exe" }, "windows"), {
    file: "C:\\Windows\\cmd.exe",
    args: [],
  });
});
