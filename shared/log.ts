/**
 * Logging setup: one readable line per record on stderr, for every logger under the
 * "drftpd" category. Modules get their logger with
 * `getLogger(["drftpd", "master", "ftp"])` from "@logtape/logtape".
 *
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import type { LogLevelName } from "./config.ts";
import { writeAllSync } from "./bytes.ts";

/** Root category of every drftpd logger. */
export const LOG_CATEGORY = "drftpd";

/** Options for {@link setupLogging}. */
export interface SetupLoggingOptions {
  /** Where lines go; default stderr. Tests pass a collector. */
  write?: (line: string) => void;
  /** "text" (default): {@link formatLogRecord}; "json": one JSON object per line. */
  format?: "text" | "json";
}

/**
 * Formats one record as `2024-05-01T12:00:00.000Z INFO    drftpd.master: message`, values
 * interpolated, on a single line (newlines and other control characters in the message are
 * escaped so that client-supplied text cannot forge log lines). Interpolated strings appear as
 * they are, errors as "Name: message", other values in compact `Deno.inspect` form.
 */
export function formatLogRecord(record: LogRecord): string {
  return FORMATTER(record).replace(/\n$/, "");
}

const FORMATTER = getTextFormatter({
  timestamp: (ts) => new Date(ts).toISOString(),
  level: "FULL",
  category: ".",
  value: formatValue,
  format: ({ timestamp, level, category, message }) =>
    `${timestamp} ${level.padEnd(7)} ${category}: ${escapeControls(message)}`,
});

/**
 * Configures logtape for this process: records at `level` or above from ["drftpd", ...] go to
 * stderr, one line each; logtape's own meta logger only reports warnings and errors. Replaces
 * any earlier configuration (`reset: true`), so calling it again is harmless.
 */
export async function setupLogging(
  level: LogLevelName,
  options: SetupLoggingOptions = {},
): Promise<void> {
  const write = options.write ?? writeStderr;
  const sink: Sink = options.format === "json"
    ? (record) => write(JSON_FORMATTER(record))
    : (record) => write(formatLogRecord(record) + "\n");
  await configure({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: [LOG_CATEGORY], sinks: ["stderr"], lowestLevel: level },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
    ],
  });
}

/** `{"@timestamp", "level", "message" (values interpolated), "logger", "properties"}` per line. */
const JSON_FORMATTER = getJsonLinesFormatter({ categorySeparator: ".", message: "rendered" });

function formatValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  return Deno.inspect(v, { colors: false, compact: true, breakLength: Infinity, depth: 4 });
}

const ENCODER = new TextEncoder();

function writeStderr(line: string): void {
  writeAllSync(Deno.stderr, ENCODER.encode(line));
}

function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}
