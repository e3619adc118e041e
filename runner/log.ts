/**
 * The runner's log: one line per event, human-readable by default or JSON
 * (`--log-format json`). Anything that looks like a token is redacted, so a
 * careless field can never leak one.
 *
 * @module
 */

/** How log lines look. */
export type LogFormat = "text" | "json";

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Writes log lines. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const SECRET_KEY = /token|secret|password|authorization|cookie/i;
const JWT = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
const TOKEN_QUERY = /([?&]token=)[^&\s]+/g;

/** Replaces secrets in a string: JWTs and `token=` query values. */
export function redact(text: string): string {
  return text.replace(JWT, "[redacted]").replace(TOKEN_QUERY, "$1[redacted]");
}

function cleanFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (SECRET_KEY.test(key)) out[key] = "[redacted]";
    else if (typeof value === "string") out[key] = redact(value);
    else if (value instanceof Error) out[key] = redact(value.message);
    else out[key] = value;
  }
  return out;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  format?: LogFormat;
  /** Lowest level written (default `info`). */
  level?: LogLevel;
  /** Where lines go (default stderr). */
  write?: (line: string) => void;
  /** Clock for timestamps. */
  now?: () => Date;
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? "text";
  const min = ORDER[options.level ?? "info"];
  const encoder = new TextEncoder();
  const write = options.write ?? ((line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n")));
  const now = options.now ?? (() => new Date());
  const log = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (ORDER[level] < min) return;
    const clean = cleanFields(fields);
    if (format === "json") {
      write(JSON.stringify({ time: now().toISOString(), level, msg: redact(message), ...clean }));
      return;
    }
    const extras = Object.entries(clean).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    );
    const prefix = level === "info" ? "" : `${level}: `;
    write([`${prefix}${redact(message)}`, ...extras].join(" "));
  };
  return {
    debug: (message, fields) => log("debug", message, fields),
    info: (message, fields) => log("info", message, fields),
    warn: (message, fields) => log("warn", message, fields),
    error: (message, fields) => log("error", message, fields),
  };
}

/** A logger that writes nothing (tests). */
export const silentLogger: Logger = createLogger({ write: () => {} });
