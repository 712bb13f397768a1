/**
 * Free loopback ports for test sites.
 *
 * @module
 */

/**
 * Ports this test process handed out already: the kernel may offer a port it just gave (and the
 * caller has not bound yet) a second time, as when a site's FTP and link ports came out equal.
 */
const handedOut = new Set<number>();

/**
 * A TCP port that was free on 0.0.0.0 a moment ago (listen on port 0, read it, close), and not
 * one this process was given before.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("No free port found that was not handed out before");
}

/** An inclusive range of `n` consecutive ports, all free on 0.0.0.0 a moment ago. */
export function freePortRange(n: number): { from: number; to: number } {
  // Stay below the Linux ephemeral range (32768+) so outgoing connections do not take them;
  // pick a random base so test files running in parallel rarely try the same range.
  for (let attempt = 0; attempt < 200; attempt++) {
    const from = 20000 + Math.floor(Math.random() * (32000 - 20000 - n));
    const held: Deno.Listener[] = [];
    try {
      for (let port = from; port < from + n; port++) {
        held.push(Deno.listen({ hostname: "0.0.0.0", port }));
      }
      return { from, to: from + n - 1 };
    } catch {
      // one was taken: try another base
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`No ${n} consecutive free ports found`);
}
