import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import {
  installService,
  launchdPlist,
  ServiceError,
  serviceFilePath,
  type ServiceSpec,
  systemdUnit,
  uninstallService,
  windowsTask,
} from "./service.ts";

/** A spec with the awkward parts a real one may have: spaces, quotes and `&` in paths. */
function specIn(dir: string): ServiceSpec {
  return {
    program: Deno.execPath(),
    args: ["run", "--allow-net", join(dir, "my runner", "main.ts")],
    configPath: join(dir, "a & b", "config.json"),
    home: dir,
  };
}

Deno.test("service: the systemd unit passes systemd-analyze verify, restarts on failure, spares the holders, quotes its paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-unit-" });
  try {
    const unit = systemdUnit(specIn(dir));
    assert(unit.includes("Restart=on-failure") && unit.includes("WantedBy=default.target"), unit);
    assert(unit.includes("KillMode=process"), "a service restart leaves the session holders running");
    assert(unit.includes(`"${join(dir, "my runner", "main.ts")}"`), "a path with a space is quoted");
    const file = join(dir, "coda-runner.service");
    await Deno.writeTextFile(file, unit);
    const verified = await new Deno.Command("systemd-analyze", { args: ["verify", file], stderr: "piped" })
      .output();
    const complaints = new TextDecoder().decode(verified.stderr);
    assert(verified.success && !complaints.includes(file), complaints);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("service: the launchd agent and the Windows task carry the command, escaped, and restart on failure", () => {
  const spec = specIn("/Users/me");
  const plist = launchdPlist(spec);
  assert(plist.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist'));
  assert(plist.includes("<key>Label</key>\n  <string>dev.coda.runner</string>"));
  assert(plist.includes(`<string>${Deno.execPath()}</string>`));
  assert(plist.includes("<string>/Users/me/a &amp; b/config.json</string>"), "& is escaped");
  assert(
    /<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>/.test(plist),
    "restarts on failure",
  );
  assertEquals(
    plist.match(/<(\w+)[ >]/g)?.length,
    plist.match(/<\/\w+>/g)?.length,
    "every element is closed",
  );

  const task = windowsTask({
    ...spec,
    program: "C:\\Users\\me\\coda-runner.exe",
    args: [],
    home: "C:\\Users\\me",
  });
  assert(task.includes("<Command>C:\\Users\\me\\coda-runner.exe</Command>"));
  assert(task.includes("<LogonTrigger>") && task.includes("<RestartOnFailure>"));
  assert(task.includes("<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>"), "never stopped for running long");
});

Deno.test("service: files go where each platform looks for them", () => {
  assertEquals(serviceFilePath("linux", { home: "/h" }), "/h/.config/systemd/user/coda-runner.service");
  assertEquals(
    serviceFilePath("linux", { home: "/h", xdgConfigHome: "/x" }),
    "/x/systemd/user/coda-runner.service",
  );
  assertEquals(
    serviceFilePath("darwin", { home: "/Users/me" }),
    "/Users/me/Library/LaunchAgents/dev.coda.runner.plist",
  );
  assert(
    serviceFilePath("windows", { home: "C:\\u", localAppData: "C:\\u\\L" }).endsWith("coda-runner-task.xml"),
  );
});

Deno.test({
  name: "service: without a systemd user session, install says so and leaves no unit behind",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "coda-install-" });
    try {
      const file = serviceFilePath("linux", { home: dir, xdgConfigHome: join(dir, "config") });
      const running = await new Deno.Command("systemctl", {
        args: ["--user", "is-system-running"],
        stdout: "null",
        stderr: "null",
      })
        .output().then((r) => r.success, () => false);
      if (running) {
        // A machine with a user session: the real install, then the real uninstall.
        await installService("linux", file, specIn(dir));
        assert(await uninstallService("linux", file));
        return;
      }
      let failure: unknown;
      await installService("linux", file, specIn(dir)).catch((error) => failure = error);
      assert(failure instanceof ServiceError, String(failure));
      assert(failure.message.includes("systemctl --user daemon-reload"), failure.message);
      assert(!await Deno.stat(file).then(() => true, () => false), "no unit left behind");
      assertEquals(await uninstallService("linux", file), false, "nothing to uninstall");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
