/**
 * File-descriptor exhaustion (issue 11, point 1): the master runs with a limit of 256 open files
 * (`prlimit --nofile=256`) while 1,000 idle connections hold its slave-link port and 1,000 its
 * FTP port. It must stay up, close every one of them once its deadline passes (link handshake,
 * login), and serve a normal login and transfer all along.
 */
import assert from "node:assert/strict";
import { makeSite, randomBytes, sha256, type Site } from "../testing/mod.ts";
import { deadline } from "../shared/timers.ts";

const IDLE = 1000;

/** Opens up to `n` idle TCP connections to `port` (a few at a time; slow connects give up). */
async function flood(port: number, n: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      try {
        conns.push(
          await Deno.connect({ hostname: "127.0.0.1", port, signal: AbortSignal.timeout(10_000) }),
        );
      } catch {
        // the backlog was full while the master was backing off: that connection never was
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return conns;
}

/** Resolves once the server has closed `conn` (EOF or reset); whatever it sent is discarded. */
async function closedByServer(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    while ((await conn.read(buf)) !== null) {
      // greeting, 421
    }
  } catch {
    // reset
  } finally {
    conn.close();
  }
}

async function loginAndTransfer(site: Site, name: string): Promise<void> {
  await using ftp = await site.control();
  const bytes = randomBytes(256 * 1024);
  await ftp.store(`/${name}`, bytes);
  const { data } = await ftp.retrieve(`/${name}`);
  assert.equal(await sha256(data), await sha256(bytes));
}

Deno.test("fd exhaustion: 1,000 idle link and 1,000 idle FTP connections under a 256 fd limit", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    masterWrapper: ["prlimit", "--nofile=256", "--"],
    masterExtra: "login_timeout = 2",
    slavesExtra: "handshake_timeout = 2",
    logLevel: "info",
  });
  const masterLog = await site.log("master");
  assert.match(masterLog, /max_connections lowered from 2000 to \d+/);
  const linkPort = Number(/Slave link \(TLS\) listening on [\d.]+:(\d+)/.exec(masterLog)?.[1]);
  assert.ok(linkPort > 0, "link port in the master's log");

  const started = Date.now();
  const [link, ftp] = await Promise.all([flood(linkPort, IDLE), flood(site.ftpPort, IDLE)]);
  const all = [...link, ...ftp];
  assert.ok(link.length > IDLE / 2 && ftp.length > IDLE / 2, `${link.length}/${ftp.length} open`);
  const closed = all.map(closedByServer);

  // While they are held: a normal session works.
  await loginAndTransfer(site, "during.bin");
  const { states } = await site.slaveStates();
  assert.equal(states.s1, "online");

  // Every idle connection is closed once its deadline (2 s) passes.
  await deadline(Promise.all(closed), {
    ms: 60_000,
    what: "the master closing every idle connection",
  });
  console.log(
    `${link.length} link + ${ftp.length} FTP idle connections closed within ${
      Date.now() - started
    } ms`,
  );
  await loginAndTransfer(site, "after.bin");
  assert.doesNotMatch(
    await site.log("master"),
    /exit master|Too many open files \(os error 24\)\n.*exit/,
  );
});
