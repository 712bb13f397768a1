/**
 * The master's HTTP side (`[http] listen`): `/healthz`, `/metrics` (Prometheus text), `/` (the
 * live status page, its assets embedded in `status_page.ts`), `/status.json` and `/events`
 * (Server-Sent Events the page listens to). Bound to loopback it is open; bound elsewhere every
 * request needs the login of an admin user (HTTP basic auth).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { HostPort } from "../../shared/config_types.ts";
import { formatHostPort } from "../../shared/config.ts";
import { isLoopback, listenError } from "../../shared/net.ts";
import type { ActiveTransfer, SiteMetrics, ThroughputSample } from "../metrics.ts";
import type { SlaveStatus } from "../slaves/registry.ts";
import type { ReplicationStats } from "../slaves/replication.ts";
import { formatMetrics, type MetricFamily, PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";
import { STATUS_PAGE_HTML } from "./status_page.ts";
import type { WorkStatus } from "../work_progress.ts";

const log = getLogger(["drftpd", "master", "http"]);

/** Long work (a remerge) in progress, for the page and `/metrics`. */
export type LongWork = WorkStatus;

/** What the HTTP side reads from the master. */
export interface SiteView {
  metrics: SiteMetrics;
  /** Every known slave with its state. */
  slaves(): Promise<SlaveStatus[]>;
  /** Throws when the filelist cannot be read. */
  checkFilelist(): Promise<void>;
  /** Whether the FTP listener still accepts connections. */
  ftpListening(): boolean;
  /** Entries (files and folders) in the filelist (may be a few seconds old). */
  filelistEntries(): Promise<number>;
  /** Operations queued for offline slaves, per slave. */
  pendingOps(): Promise<Record<string, number>>;
  /** Long work running now. */
  longWork(): LongWork[];
  /** Replication queue and counts. */
  replication(): ReplicationStats;
  /** Whether `user`/`password` is an admin's login. */
  verifyAdmin(user: string, password: string): Promise<boolean>;
}

/** What `/status.json` and every `/events` message carry. */
export interface StatusSnapshot {
  at: number;
  sessions: number;
  slaves: (SlaveStatus & { throughput: number })[];
  active: (ActiveTransfer & { speed: number })[];
  sample: ThroughputSample | null;
  work: LongWork[];
}

/** How often `/events` pushes a snapshot, and the throughput sampling period, ms. */
export const SAMPLE_INTERVAL_MS = 1000;

/** Most `/events` clients at once (each holds a connection and a timer). */
const MAX_EVENT_CLIENTS = 64;

/**
 * Serves the HTTP side on `listen` until `signal` aborts; the returned promise settles when the
 * server has stopped. Binds at once: a busy address throws here, naming it. Samples throughput
 * once a second while it runs.
 */
export function serveHttp(
  listen: HostPort,
  view: SiteView,
  signal: AbortSignal,
): Promise<void> {
  const open = isLoopback(listen.host);
  const handler = createHttpHandler(view, { requireAuth: !open, signal });
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: listen.host,
      port: listen.port,
      signal,
      onListen: ({ port }) =>
        log.info("Status page and metrics on http://{addr}/{auth}", {
          addr: formatHostPort({ host: listen.host, port }),
          auth: open ? "" : " (admin login required)",
        }),
      onError: (e) => {
        log.warn("HTTP request failed: {error}", { error: String(e) });
        return new Response("Internal error\n", { status: 500 });
      },
    }, handler);
  } catch (e) {
    throw listenError("HTTP", formatHostPort(listen), e);
  }
  const timer = setInterval(() => view.metrics.sample(), SAMPLE_INTERVAL_MS);
  return server.finished.finally(() => clearInterval(timer));
}

/** The request handler; exported for tests, which call it with plain Requests. */
export function createHttpHandler(
  view: SiteView,
  options: { requireAuth: boolean; signal?: AbortSignal },
): (req: Request) => Promise<Response> {
  let eventClients = 0;
  return async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return text(405, "Only GET and HEAD\n", { allow: "GET, HEAD" });
    }
    if (options.requireAuth && !(await authorised(req, view))) {
      return text(401, "An admin login is required\n", {
        "www-authenticate": 'Basic realm="drftpd", charset="UTF-8"',
      });
    }
    const path = new URL(req.url).pathname;
    switch (path) {
      case "/healthz":
        return await health(view);
      case "/metrics":
        return new Response(formatMetrics(await families(view)), {
          headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
        });
      case "/":
        return new Response(STATUS_PAGE_HTML, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy":
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
          },
        });
      case "/status.json":
        return json({ ...(await snapshot(view)), history: view.metrics.history() });
      case "/events": {
        if (eventClients >= MAX_EVENT_CLIENTS) return text(503, "Too many event clients\n");
        eventClients++;
        return events(view, options.signal, () => eventClients--);
      }
    }
    return text(404, `Not found: ${path.slice(0, 200)}\n`);
  };
}

async function health(view: SiteView): Promise<Response> {
  const problems: string[] = [];
  if (!view.ftpListening()) problems.push("FTP listener is closed");
  try {
    await view.checkFilelist();
  } catch (e) {
    problems.push(`filelist cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (problems.length > 0) return text(503, `unhealthy: ${problems.join("; ")}\n`);
  return text(200, "ok\n");
}

/** A live snapshot of slaves, transfers and long work. */
export async function snapshot(view: SiteView): Promise<StatusSnapshot> {
  const history = view.metrics.history();
  const sample = history.at(-1) ?? null;
  const now = Date.now();
  return {
    at: now,
    sessions: view.metrics.sessions,
    slaves: (await view.slaves()).map((s) => ({ ...s, throughput: sample?.slaves[s.name] ?? 0 })),
    active: view.metrics.active().map((t) => ({
      ...t,
      speed: now > t.started ? Math.round(t.bytes / ((now - t.started) / 1000)) : 0,
    })),
    sample,
    work: view.longWork(),
  };
}

function events(view: SiteView, stop: AbortSignal | undefined, done: () => void): Response {
  const encoder = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(timer);
    stop?.removeEventListener("abort", onStop);
    done();
  };
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | null = null;
  const onStop = () => {
    try {
      controllerRef?.close();
    } catch {
      // already closed
    }
    end();
  };
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controllerRef = controller;
      const push = async (extra: Record<string, unknown> = {}) => {
        if (ended) return;
        const data = JSON.stringify({ ...(await snapshot(view)), ...extra });
        if (!ended) controller.enqueue(encoder.encode(`data: ${data}\n\n`));
      };
      stop?.addEventListener("abort", onStop, { once: true });
      await push({ history: view.metrics.history() });
      timer = setInterval(() => push().catch(onStop), SAMPLE_INTERVAL_MS);
    },
    cancel: end,
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}

/** Every metric family `/metrics` shows. */
async function families(view: SiteView): Promise<MetricFamily[]> {
  const m = view.metrics;
  const slaves = await view.slaves();
  const sample = m.history().at(-1);
  const moved = m.movedBySlave();
  const pending = await view.pendingOps();
  const perSlave = (
    name: string,
    help: string,
    type: "counter" | "gauge",
    value: (s: SlaveStatus) => number,
  ): MetricFamily => ({
    name,
    help,
    type,
    samples: slaves.map((s) => ({ labels: { slave: s.name }, value: value(s) })),
  });
  const work = view.longWork();
  const repl = view.replication();
  return [
    {
      name: "drftpd_sessions",
      help: "Open FTP control connections.",
      type: "gauge",
      samples: [{ value: m.sessions }],
    },
    {
      name: "drftpd_logins_total",
      help: "Login attempts by result (ok, failed: wrong name or password, refused: disabled, " +
        "expired or address not allowed).",
      type: "counter",
      samples: Object.entries(m.logins()).map(([result, value]) => ({ labels: { result }, value })),
    },
    {
      name: "drftpd_transfers_total",
      help: "Finished transfers by direction, result and data path (direct: client and slave; " +
        "sibling: through another slave; relayed: through the master).",
      type: "counter",
      samples: m.transfers().map((t) => ({
        labels: { direction: t.direction, result: t.outcome, path: t.route },
        value: t.count,
      })),
    },
    {
      name: "drftpd_transfer_bytes_total",
      help: "Bytes of finished transfers by direction, result and data path.",
      type: "counter",
      samples: m.bytes().map((b) => ({
        labels: { direction: b.direction, result: b.outcome, path: b.route },
        value: b.bytes,
      })),
    },
    {
      name: "drftpd_relayed_bytes_total",
      help: "File bytes the master carried itself, counted as they move (relay: PASV without " +
        "PRET on the master's port; pasv_proxy: a client ignored a slave's 227 address).",
      type: "counter",
      samples: Object.entries(m.relayedBytes()).map(([via, value]) => ({ labels: { via }, value })),
    },
    {
      name: "drftpd_active_transfers",
      help: "Transfers running now.",
      type: "gauge",
      samples: [{ value: m.active().length }],
    },
    perSlave(
      "drftpd_slave_online",
      "1 when the slave is online.",
      "gauge",
      (s) => s.state === "online" ? 1 : 0,
    ),
    perSlave(
      "drftpd_slave_remerging",
      "1 while a remerge of the slave runs.",
      "gauge",
      (s) => s.state === "remerging" || s.remerging ? 1 : 0,
    ),
    perSlave("drftpd_slave_free_bytes", "Free bytes the slave reported.", "gauge", (s) => s.free),
    perSlave("drftpd_slave_total_bytes", "Size of the slave's disk.", "gauge", (s) => s.total),
    perSlave(
      "drftpd_slave_active_transfers",
      "Transfers the slave runs now.",
      "gauge",
      (s) => s.activeTransfers,
    ),
    perSlave(
      "drftpd_slave_throughput_bytes_per_second",
      "Bytes per second the slave moved over the last second.",
      "gauge",
      (s) => sample?.slaves[s.name] ?? 0,
    ),
    perSlave(
      "drftpd_slave_transferred_bytes_total",
      "Bytes the slave moved since the master started (running transfers included).",
      "counter",
      (s) => moved.get(s.name) ?? 0,
    ),
    perSlave(
      "drftpd_slave_pending_operations",
      "Filelist operations queued for the slave while it was offline.",
      "gauge",
      (s) => pending[s.name] ?? 0,
    ),
    {
      name: "drftpd_remerge_files",
      help: "Files a running remerge has received so far.",
      type: "gauge",
      samples: work.filter((w) => w.kind === "remerge").map((w) => ({
        labels: { slave: w.slave },
        value: w.files,
      })),
    },
    {
      name: "drftpd_replication_queue",
      help: "Files waiting for their [[replication]] copies.",
      type: "gauge",
      samples: [{ value: repl.queued }],
    },
    {
      name: "drftpd_replication_running",
      help: "Files being brought to their [[replication]] rule now.",
      type: "gauge",
      samples: [{ value: repl.running }],
    },
    {
      name: "drftpd_replication_copies_total",
      help: "Slave-to-slave copies made for [[replication]] rules, by result.",
      type: "counter",
      samples: [
        { labels: { result: "complete" }, value: repl.copied },
        { labels: { result: "failed" }, value: repl.failed },
      ],
    },
    {
      name: "drftpd_filelist_entries",
      help: "Files and folders in the filelist.",
      type: "gauge",
      samples: [{ value: await view.filelistEntries() }],
    },
  ];
}

async function authorised(req: Request, view: SiteView): Promise<boolean> {
  const header = req.headers.get("authorization") ?? "";
  const m = /^Basic ([A-Za-z0-9+/=]{1,1024})$/.exec(header);
  if (!m) return false;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(m[1]!), (c) => c.charCodeAt(0)));
  } catch {
    return false;
  }
  const colon = decoded.indexOf(":");
  if (colon <= 0) return false;
  return await view.verifyAdmin(decoded.slice(0, colon), decoded.slice(colon + 1));
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}
