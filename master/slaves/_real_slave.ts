/**
 * Test helper: slave doubles answering with a real TransferManager over a temp root (real
 * sockets, real files) behind real SlaveHandles, for master-side tests of copies and sibling
 * sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SlaveDouble } from "../ftp/_session_double.ts";
import { createSelfSignedCert } from "../../shared/tls/mod.ts";
import { SlaveError } from "../../slave/_errors.ts";
import { Storage } from "../../slave/storage.ts";
import { TransferManager, type TransferOptions } from "../../slave/transfer.ts";

export const PAIR = createSelfSignedCert("localhost");

/** A slave double answering with a real TransferManager over a temp root. */
export class RealSlave implements AsyncDisposable {
  readonly double: SlaveDouble;
  readonly manager: TransferManager;
  readonly root: string;

  private constructor(name: string, root: string, options: TransferOptions) {
    this.root = root;
    this.double = new SlaveDouble(name);
    this.manager = new TransferManager(new Storage(root), {
      listenAddress: "127.0.0.1",
      publicHost: "127.0.0.1",
      passivePorts: { from: 0, to: 0 },
    }, { tls: { cert: PAIR.cert, key: PAIR.key }, ...options });
    this.double.answer = async (req) => {
      try {
        switch (req.type) {
          case "listen":
            return this.manager.listen(req.xfer, req.peer);
          case "transfer":
            return await this.manager.transfer(req);
          case "abort":
            this.manager.abort(req.xfer);
            return {};
          default:
            return { error: "bad_request", message: `unexpected ${req.type}` };
        }
      } catch (e) {
        assert.ok(e instanceof SlaveError, String(e));
        return { error: e.code, message: e.message, ...(e.partial ? { partial: e.partial } : {}) };
      }
    };
  }

  static async create(name: string, options: TransferOptions = {}): Promise<RealSlave> {
    const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "drftpd_sibling_" }));
    return new RealSlave(name, root, options);
  }

  get handle() {
    return this.double.handle;
  }

  /** Files under the root (relative paths), sorted. */
  files(dir = ""): string[] {
    const out: string[] = [];
    for (const e of Deno.readDirSync(this.root + dir)) {
      if (e.isDirectory) out.push(...this.files(`${dir}/${e.name}`));
      else out.push(`${dir}/${e.name}`);
    }
    return out.sort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.manager.close();
    await this.double.close();
    await Deno.remove(this.root, { recursive: true });
  }
}

/** `size` pseudo-random bytes: a 1 MiB block repeated (large files fill fast). */
export function pattern(size: number, seed: number): Uint8Array {
  const block = new Uint8Array(Math.min(size, 1 << 20));
  let x = seed;
  for (let i = 0; i < block.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    block[i] = x >>> 24;
  }
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += block.length) data.set(block.subarray(0, size - at), at);
  return data;
}
