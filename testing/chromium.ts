/**
 * Headless Debian `chromium` driven over the DevTools protocol: open a page, evaluate script in it
 * (waiting on promises, so a test awaits a DOM change instead of sleeping), take a screenshot.
 * Tests skip, saying so, when chromium is missing.
 *
 * @module
 */

/** The chromium binary, or null (with a warning) when it is not installed. */
export function chromiumPath(): string | null {
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not here
    }
  }
  console.warn("chromium missing (apt-get install chromium): browser tests skip");
  return null;
}

/** A page in a headless chromium. */
export interface BrowserPage extends AsyncDisposable {
  /** Evaluates `expression` in the page; a promise it returns is awaited. Returns the value. */
  evaluate<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** A PNG of the page as it is now. */
  screenshot(): Promise<Uint8Array>;
}

/** Starts chromium (as root: without its sandbox) and opens `url` in a fresh profile. */
export async function openPage(url: string): Promise<BrowserPage> {
  const path = chromiumPath();
  if (path === null) throw new Error("chromium is not installed");
  const profile = await Deno.makeTempDir({ prefix: "drftpd-chromium-" });
  const child = new Deno.Command(path, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      "--window-size=1200,900",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const cleanup = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  let ws: WebSocket | undefined;
  try {
    const endpoint = await devtoolsEndpoint(child.stderr);
    ws = new WebSocket(endpoint);
    const socket = ws;
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`Cannot connect to ${endpoint}`));
    });
    let nextId = 1;
    const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
    const loaded = Promise.withResolvers<void>();
    socket.onmessage = (e) => {
      const msg = JSON.parse(String(e.data));
      if (msg.method === "Page.loadEventFired") loaded.resolve();
      const p = msg.id === undefined ? undefined : pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`DevTools: ${msg.error.message}`));
      else p.resolve(msg.result);
    };
    socket.onclose = () => {
      for (const p of pending.values()) p.reject(new Error("DevTools connection closed"));
      pending.clear();
    };
    const send = (method: string, params: Record<string, unknown>, sessionId?: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: (v) => resolve(v as Record<string, unknown>), reject });
        socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      });
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true }) as {
      sessionId: string;
    };
    await send("Page.enable", {}, sessionId);
    const nav = await send("Page.navigate", { url }, sessionId);
    if (nav.errorText) throw new Error(`Cannot load ${url}: ${nav.errorText}`);
    await loaded.promise;
    return {
      async evaluate<T>(expression: string, timeoutMs = 30_000): Promise<T> {
        const r = await send("Runtime.evaluate", {
          expression,
          awaitPromise: true,
          returnByValue: true,
          timeout: timeoutMs,
        }, sessionId) as { result: { value?: unknown }; exceptionDetails?: { text: string } };
        if (r.exceptionDetails) {
          throw new Error(`Page script failed: ${JSON.stringify(r.exceptionDetails)}`);
        }
        return r.result.value as T;
      },
      async screenshot(): Promise<Uint8Array> {
        const r = await send("Page.captureScreenshot", { format: "png" }, sessionId);
        return Uint8Array.from(atob(String(r.data)), (c) => c.charCodeAt(0));
      },
      async [Symbol.asyncDispose]() {
        socket.close();
        await cleanup();
      },
    };
  } catch (e) {
    ws?.close();
    await cleanup();
    throw e;
  }
}

/** Reads chromium's stderr until it names its DevTools endpoint; keeps draining it after. */
async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`chromium exited before DevTools listened:\n${text.slice(-2000)}`);
    text += decoder.decode(value, { stream: true });
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
    if (m) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return m[1]!;
    }
  }
}
