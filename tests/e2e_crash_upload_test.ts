/**
 * Uploads cut short by a crash never look complete. Three uploads are in flight when the slave
 * (then the master) is SIGKILLed: a STOR of a new name, a STOR over an existing file, and an APPE
 * to an existing file. Afterwards the new name is absent, the overwritten file still has its old
 * bytes, and the appended file (written in place) is marked incomplete: left out of listings and
 * refused to RETR until a resume completes it. Nothing the crash left is taken for a file by a
 * remerge.
 */

import assert from "node:assert/strict";
import {
  arrivingUploads,
  exists,
  type FtpControl,
  makeSite,
  parse227,
  poll,
  randomBytes,
  type Site,
} from "../testing/mod.ts";
import { writeAll } from "../shared/bytes.ts";

const OLD = 200_000;
const SENT = 300_000;

/** An upload whose first `SENT` bytes are on the slave's disk, its data connection still open. */
interface InFlight {
  ftp: FtpControl;
  data: Deno.TcpConn;
}

/** Starts `verb path` and sends `bytes`; resolves once `onDisk()` sees them arrived. */
async function startUpload(
  site: Site,
  verb: "STOR" | "APPE",
  path: string,
  bytes: Uint8Array,
  onDisk: () => Promise<boolean>,
): Promise<InFlight> {
  const ftp = await site.control();
  await ftp.expect(`PRET ${verb} ${path}`, 200);
  const r = await ftp.send("PASV");
  assert.equal(r.code, 227, r.text);
  const at = parse227(r.text);
  const data = await Deno.connect({ hostname: at.host, port: at.port });
  const opening = await ftp.send(`${verb} ${path}`);
  assert.equal(opening.code, 150, opening.text);
  await writeAll(data, bytes);
  await poll(async () => (await onDisk()) || undefined, {
    intervalMs: 25,
    describe: async () => `${verb} ${path} to reach the slave's disk\n${await site.logs(3000)}`,
  });
  return { ftp, data };
}

/** The size of `path`, or -1 when it is missing. */
async function sizeOf(path: string): Promise<number> {
  return (await Deno.stat(path).catch(() => null))?.size ?? -1;
}

/** Names NLST lists in `dir`. */
async function names(ftp: FtpControl, dir: string): Promise<string[]> {
  const text = new TextDecoder().decode(
    (await ftp.transfer(await ftp.pasv(`NLST ${dir}`), `NLST ${dir}`)).data,
  );
  return text.split(/\r?\n/).filter((l) => l !== "").map((l) => l.replace(/^.*\//, "")).sort();
}

for (const crash of ["slave", "master"] as const) {
  Deno.test(`${crash} SIGKILLed mid-upload: nothing cut short looks complete`, async () => {
    await using site = await makeSite({ slaves: [{ name: "s", address: "127.0.0.2" }] });
    const root = `${site.slaveRoot("s")}/c`;
    const old = randomBytes(OLD);
    const next = randomBytes(SENT * 2);
    {
      await using ftp = await site.control();
      await ftp.expect("MKD /c", 257);
      await ftp.store("/c/over.bin", old);
      await ftp.store("/c/app.bin", old);
    }

    const arrived = async (n: number) => {
      const temps = await arrivingUploads(root);
      const sizes = await Promise.all(temps.map((t) => sizeOf(`${root}/${t}`)));
      return sizes.filter((x) => x === SENT).length >= n;
    };
    const fresh = await startUpload(
      site,
      "STOR",
      "/c/new.bin",
      next.subarray(0, SENT),
      () => arrived(1),
    );
    const over = await startUpload(
      site,
      "STOR",
      "/c/over.bin",
      next.subarray(0, SENT),
      () => arrived(2),
    );
    const app = await startUpload(
      site,
      "APPE",
      "/c/app.bin",
      next.subarray(0, SENT),
      async () => await sizeOf(`${root}/app.bin`) === OLD + SENT,
    );
    // Before the crash the real names hold only what was complete.
    assert.equal(await exists(`${root}/new.bin`), false);
    assert.deepEqual(await Deno.readFile(`${root}/over.bin`), old);

    const flights = [fresh, over, app];
    try {
      if (crash === "slave") {
        await site.killSlave("s", "SIGKILL");
        for (const f of flights) {
          const end = await f.ftp.read();
          assert.equal(end.code, 426, end.text);
        }
        await site.startSlave("s");
      } else {
        await site.restartMaster({ signal: "SIGKILL" });
      }
    } finally {
      for (const f of flights) {
        f.data.close();
        f.ftp.close();
      }
    }

    await using ftp = await site.control();
    // The new name is absent, on disk too; what arrived under the temporary names is gone
    // (the slave removes it when its link drops, or at its next start after a crash).
    assert.equal((await ftp.send("SIZE /c/new.bin")).code, 550);
    assert.equal(await exists(`${root}/new.bin`), false);
    await poll(async () => (await arrivingUploads(root)).length === 0 || undefined, {
      describe: async () => `no temporary upload left in ${root}\n${await site.logs(3000)}`,
    });
    // The overwritten file still has its old bytes.
    assert.deepEqual((await ftp.retrieve("/c/over.bin")).data, old);
    // The appended file was written in place: it is marked incomplete, not listed, not served.
    assert.deepEqual(await names(ftp, "/c"), ["over.bin"]);
    await ftp.pasv("RETR /c/app.bin");
    const retr = await ftp.send("RETR /c/app.bin");
    assert.equal(retr.code, 550, retr.text);
    assert.match(retr.text, /incomplete/);
    // SIZE tells a client where to resume; the resume's 226 makes it whole and listed again.
    const size = await ftp.send("SIZE /c/app.bin");
    assert.equal(size.code, 213, size.text);
    const at = Number(size.text.trim());
    assert.ok(at >= OLD && at <= OLD + SENT, `size ${at}`);
    const whole = new Uint8Array(OLD + SENT * 2);
    whole.set(old);
    whole.set(next, OLD);
    const endpoint = await ftp.pasv("STOR /c/app.bin");
    await ftp.expect(`REST ${at}`, 350);
    await ftp.transfer(endpoint, "STOR /c/app.bin", { upload: whole.subarray(at) });
    assert.deepEqual(await names(ftp, "/c"), ["app.bin", "over.bin"]);
    assert.deepEqual((await ftp.retrieve("/c/app.bin")).data, whole);
  });
}
