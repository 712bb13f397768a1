/**
 * The Prometheus text exposition format (version 0.0.4), for `/metrics`: a pure formatter of
 * metric families. No suitable library is available to Deno without JSR, and the format is
 * small: `# HELP`, `# TYPE`, then one `name{label="value"} number` line per sample.
 *
 * @module
 */

/** One metric family: a name, its help text, its type and its samples. */
export interface MetricFamily {
  /** `drftpd_…`, matching `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number }[];
}

/** The Content-Type of {@link formatMetrics}' output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Formats `families` as Prometheus text. Throws TypeError on an invalid metric or label name. */
export function formatMetrics(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new TypeError(`Invalid metric name "${f.name}"`);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      for (const [k] of labels) {
        if (!LABEL.test(k)) throw new TypeError(`Invalid label name "${k}" of ${f.name}`);
      }
      const text = labels.length === 0
        ? ""
        : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
      out.push(`${f.name}${text} ${formatNumber(s.value)}`);
    }
  }
  return out.join("\n") + "\n";
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}
