/**
 * `coda-runner install` / `uninstall`: the paired runner as a per-user service
 * that starts at login and restarts on failure, the way `code tunnel service
 * install` does it. The service files are generated here as plain text (tested
 * against their formats); {@linkcode installService} writes them and asks the
 * platform's service manager to start them.
 *
 * - Linux: a systemd user unit, `~/.config/systemd/user/coda-runner.service`,
 *   logs in the journal (`journalctl --user -u coda-runner`). A user service
 *   stops at logout unless lingering is on (`loginctl enable-linger $USER`).
 * - macOS: a launchd agent, `~/Library/LaunchAgents/dev.coda.runner.plist`,
 *   logs in `~/Library/Logs/coda-runner.log`.
 * - Windows: a scheduled task `coda-runner` at logon, restarting on failure.
 *
 * @module
 */
import { dirname, join } from "node:path";

/** The systemd unit name and Windows task name. */
export const SERVICE_NAME = "coda-runner";
/** The launchd label. */
export const LAUNCHD_LABEL = "dev.coda.runner";

/** What the service runs. */
export interface ServiceSpec {
  /** The executable: the `coda-runner` binary (or `deno` when run from source). */
  program: string;
  /** Its arguments (for `deno`: `run`, the permissions, `runner/main.ts`). */
  args: string[];
  /** The config file the service reads its credentials from. */
  configPath: string;
  /** The user's home directory. */
  home: string;
}

/** Quotes an argument for a systemd `ExecStart=` line. */
function systemdQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)
    ? arg
    : `"${arg.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The systemd user unit. */
export function systemdUnit(spec: ServiceSpec): string {
  return [
    "[Unit]",
    "Description=Coda Dev Mode runner: this machine's terminals, reachable from your Coda app",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${[spec.program, ...spec.args].map(systemdQuote).join(" ")}`,
    `Environment=${systemdQuote(`CODA_RUNNER_CONFIG=${spec.configPath}`)}`,
    `WorkingDirectory=${spec.home}`,
    "Restart=on-failure",
    "RestartSec=5",
    // Stopping or restarting the service (an upgrade) ends the runner, not the session holders it
    // started: they keep the shells for the runner that comes back.
    "KillMode=process",
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}

function xmlEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll(
    '"',
    "&quot;",
  );
}

/** The launchd agent's property list. */
export function launchdPlist(spec: ServiceSpec): string {
  const log = join(spec.home, "Library", "Logs", "coda-runner.log");
  const strings = (values: string[]) => values.map((v) => `    <string>${xmlEscape(v)}</string>`).join("\n");
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>${LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
${strings([spec.program, ...spec.args])}
  </array>
  <key>EnvironmentVariables</key>
  <dict>
    <key>CODA_RUNNER_CONFIG</key>
    <string>${xmlEscape(spec.configPath)}</string>
  </dict>
  <key>WorkingDirectory</key>
  <string>${xmlEscape(spec.home)}</string>
  <key>RunAtLoad</key>
  <true/>
  <key>AbandonProcessGroup</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>StandardOutPath</key>
  <string>${xmlEscape(log)}</string>
  <key>StandardErrorPath</key>
  <string>${xmlEscape(log)}</string>
</dict>
</plist>
`;
}

/** Quotes an argument for a Windows command line. */
function windowsQuote(arg: string): string {
  return /^[^\s"]+$/.test(arg) ? arg : `"${arg.replaceAll('"', '\\"')}"`;
}

/** The Windows scheduled task (Task Scheduler XML): at logon, restarted on failure, no time limit. */
export function windowsTask(spec: ServiceSpec): string {
  return `<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>Coda Dev Mode runner: this machine's terminals, reachable from your Coda app</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>${xmlEscape(spec.program)}</Command>
      <Arguments>${xmlEscape(spec.args.map(windowsQuote).join(" "))}</Arguments>
      <WorkingDirectory>${xmlEscape(spec.home)}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
`;
}

/** Where the service file of `os` goes, for a user with `home` (and `XDG_CONFIG_HOME`, `LOCALAPPDATA`). */
export function serviceFilePath(
  os: typeof Deno.build.os,
  env: { home: string; xdgConfigHome?: string; localAppData?: string },
): string {
  if (os === "darwin") return join(env.home, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`);
  if (os === "windows") {
    return join(
      env.localAppData ?? join(env.home, "AppData", "Local"),
      "coda-runner",
      `${SERVICE_NAME}-task.xml`,
    );
  }
  return join(env.xdgConfigHome ?? join(env.home, ".config"), "systemd", "user", `${SERVICE_NAME}.service`);
}

/** The service file's text for `os`. */
export function serviceFile(os: typeof Deno.build.os, spec: ServiceSpec): string {
  if (os === "darwin") return launchdPlist(spec);
  if (os === "windows") return windowsTask(spec);
  return systemdUnit(spec);
}

/**
 * The service manager commands that start (install) or stop (uninstall) the service, the ones due
 * once its file is gone (systemd rereads its units), and the one that reports its state.
 */
export function serviceCommands(
  os: typeof Deno.build.os,
  file: string,
  uid: number | null,
): { install: string[][]; uninstall: string[][]; afterRemoval: string[][]; status: string[] } {
  if (os === "darwin") {
    const domain = `gui/${uid ?? 501}`;
    return {
      install: [["launchctl", "bootstrap", domain, file]],
      uninstall: [["launchctl", "bootout", `${domain}/${LAUNCHD_LABEL}`]],
      afterRemoval: [],
      status: ["launchctl", "print", `${domain}/${LAUNCHD_LABEL}`],
    };
  }
  if (os === "windows") {
    return {
      install: [["schtasks", "/Create", "/TN", SERVICE_NAME, "/XML", file, "/F"], [
        "schtasks",
        "/Run",
        "/TN",
        SERVICE_NAME,
      ]],
      uninstall: [["schtasks", "/End", "/TN", SERVICE_NAME], [
        "schtasks",
        "/Delete",
        "/TN",
        SERVICE_NAME,
        "/F",
      ]],
      afterRemoval: [],
      status: ["schtasks", "/Query", "/TN", SERVICE_NAME],
    };
  }
  return {
    install: [["systemctl", "--user", "daemon-reload"], [
      "systemctl",
      "--user",
      "enable",
      "--now",
      `${SERVICE_NAME}.service`,
    ]],
    uninstall: [["systemctl", "--user", "disable", "--now", `${SERVICE_NAME}.service`]],
    afterRemoval: [["systemctl", "--user", "daemon-reload"]],
    status: ["systemctl", "--user", "is-active", `${SERVICE_NAME}.service`],
  };
}

/** A service manager command failed; the message says which and what it answered. */
export class ServiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServiceError";
  }
}

/** Runs `command`; resolves its output, throws a {@linkcode ServiceError} naming it on failure. */
async function run(command: string[]): Promise<string> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(command[0], { args: command.slice(1), stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    throw new ServiceError(`${command[0]} is not available here (${(error as Error).message})`);
  }
  const decoder = new TextDecoder();
  const output = (decoder.decode(result.stdout) + decoder.decode(result.stderr)).trim();
  if (!result.success) {
    throw new ServiceError(`\`${command.join(" ")}\` failed: ${output || `exit ${result.code}`}`);
  }
  return output;
}

/**
 * Writes the service file for `os` and starts it. If the service manager refuses (no user systemd
 * on this machine, say), the file is removed again and a {@linkcode ServiceError} says why.
 */
export async function installService(
  os: typeof Deno.build.os,
  file: string,
  spec: ServiceSpec,
): Promise<void> {
  await Deno.mkdir(dirname(file), { recursive: true });
  await Deno.writeTextFile(file, serviceFile(os, spec));
  try {
    for (const command of serviceCommands(os, file, Deno.uid()).install) await run(command);
  } catch (error) {
    await Deno.remove(file).catch(() => {});
    throw error;
  }
}

/** Stops the service and removes its file; a service that was not installed is not an error. */
export async function uninstallService(os: typeof Deno.build.os, file: string): Promise<boolean> {
  const installed = await Deno.stat(file).then(() => true, () => false);
  if (!installed) return false;
  const commands = serviceCommands(os, file, Deno.uid());
  for (const command of commands.uninstall) await run(command).catch(() => {});
  await Deno.remove(file);
  for (const command of commands.afterRemoval) await run(command).catch(() => {});
  return true;
}

/** The service manager's word on the service, or `null` when it is not installed or cannot be asked. */
export async function serviceState(os: typeof Deno.build.os, file: string): Promise<string | null> {
  if (!await Deno.stat(file).then(() => true, () => false)) return null;
  return await run(serviceCommands(os, file, Deno.uid()).status).then(
    (output) => os === "linux" ? output : "loaded",
    (error: ServiceError) => `installed, but ${error.message}`,
  );
}
