/**
 * Free loopback ports for test sites.
 *
 * @module
 */

/** A TCP port that was free on 0.0.0.0 a moment ago (listen on port 0, read it, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
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
