/**
 * Parsing Prometheus text with a real parser: Debian's `python3-prometheus-client` (tests skip,
 * saying so, when it is missing).
 *
 * @module
 */

/** One parsed sample. */
export interface PromSample {
  family: string;
  type: string;
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SCRIPT = `
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
`;

let found: string | null | undefined;

/** A python3 that can import prometheus_client (Debian's lives in /usr/bin), or null. */
export function prometheusPython(): string | null {
  if (found !== undefined) return found;
  found = null;
  for (const py of ["/usr/bin/python3", "python3"]) {
    try {
      const r = new Deno.Command(py, {
        args: ["-c", "import prometheus_client"],
        stdout: "null",
        stderr: "null",
      }).outputSync();
      if (r.code === 0) return (found = py);
    } catch {
      // not there
    }
  }
  if (found === null) console.warn("python3-prometheus-client missing: its parser tests skip");
  return found;
}

/** Parses exposition text with prometheus_client; throws with the parser's message if invalid. */
export async function parsePrometheus(text: string): Promise<PromSample[]> {
  const py = prometheusPython();
  if (py === null) throw new Error("python3-prometheus-client is not installed");
  const child = new Deno.Command(py, {
    args: ["-c", SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`prometheus_client rejected the text: ${dec.decode(out.stderr)}`);
  }
  return JSON.parse(dec.decode(out.stdout));
}
