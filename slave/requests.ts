/**
 * The slave's answers to the master's requests: one typed handler per request kind (its reply
 * type comes from `REQUESTS` in the protocol), and the `reply`/`error` frame that answers it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type {
  ErrorMsg,
  FromSlave,
  ReplyData,
  RequestKind,
  RequestMsg,
  SlaveRequest,
} from "../shared/protocol.ts";
import { SlaveError, toSlaveError } from "./_errors.ts";
import type { Storage } from "./storage.ts";
import type { TransferManager } from "./transfer.ts";

/** Longest error message sent to the master. */
const MAX_ERROR_MESSAGE = 2_000;

/** What request handling needs from the link session. */
export interface RequestContext {
  storage: Storage;
  transfers: TransferManager;
  /** Aborts when the session ends: stops long checksums. */
  ended: AbortSignal;
  /** Sends a frame; a closed link is noticed by the read loop. */
  send(msg: FromSlave): void;
  /** Something changed the free space: report it soon. */
  diskChanged(): void;
  /** True once the slave is stopping: new transfers are refused with "stopping". */
  stopping(): boolean;
}

/** One handler per request kind, each returning that kind's reply data. */
type Handlers = { [K in RequestKind]: (req: RequestMsg<K>) => Promise<ReplyData<K>> };

/** Performs the master's requests and answers each with `reply` or `error`. */
export class RequestHandler {
  #ctx: RequestContext;
  #handlers: Handlers;
  #log = getLogger(["drftpd", "slave"]);

  /** Handles requests with what `ctx` gives. */
  constructor(ctx: RequestContext) {
    this.#ctx = ctx;
    const { storage, transfers } = ctx;
    this.#handlers = {
      listen: (req) => {
        this.#refuseWhenStopping();
        return Promise.resolve(transfers.listen(req.xfer, req.peer));
      },
      transfer: async (req) => {
        // A passive transfer whose listener was opened before the stop may still run.
        if (req.endpoint.kind === "active") this.#refuseWhenStopping();
        const result = await transfers.transfer(req);
        this.#log.info("{dir} {path}{from}: {bytes} bytes in {ms} ms{tls}", {
          dir: req.dir === "send" ? "Sent" : "Received",
          from: req.source
            ? ` fetched from ${req.source.peer}${result.kept ? " (kept as a copy)" : ""}`
            : "",
          path: req.path,
          bytes: result.bytes,
          ms: result.ms,
          tls: result.tls
            ? ` over ${result.tls.protocol}${result.tls.resumed ? " (resumed)" : ""}`
            : "",
        });
        return result;
      },
      abort: (req) => {
        transfers.abort(req.xfer);
        return Promise.resolve({});
      },
      delete: async (req) => {
        await storage.deleteFile(req.path);
        return {};
      },
      rename: async (req) => {
        await storage.rename(req.from, req.to);
        return {};
      },
      rmdir: async (req) => {
        await storage.rmdir(req.path);
        return {};
      },
      checksum: (req) => storage.checksum(req.path, ctx.ended),
      set_mtime: async (req) => {
        await storage.setMtime(req.path, req.mtime);
        return {};
      },
    };
  }

  #refuseWhenStopping(): void {
    if (this.#ctx.stopping()) {
      throw new SlaveError("stopping", "The slave is stopping: it takes no new transfers");
    }
  }

  /** Performs one request and answers it with `reply` or `error`. Never throws. */
  async handle(req: SlaveRequest): Promise<void> {
    let data: ReplyData<RequestKind>;
    try {
      data = await perform(this.#handlers, req.type, req);
    } catch (e) {
      const err = toSlaveError(e);
      const msg: ErrorMsg = {
        type: "error",
        id: req.id,
        code: err.code,
        message: err.message.slice(0, MAX_ERROR_MESSAGE),
      };
      if (err.partial !== undefined) msg.partial = err.partial;
      this.#log.info("Request {id} ({type}) failed: {code}: {message}", {
        id: req.id,
        type: req.type,
        code: err.code,
        message: err.message,
      });
      this.#ctx.send(msg);
      if (err.partial !== undefined) this.#ctx.diskChanged();
      return;
    }
    this.#ctx.send({ type: "reply", id: req.id, data });
    if (
      req.type === "delete" || req.type === "rmdir" || req.type === "rename" ||
      (req.type === "transfer" && (req.dir === "receive" || req.source?.keep === true))
    ) {
      this.#ctx.diskChanged();
    }
  }
}

/** Runs the handler of `req`'s kind. */
function perform<K extends RequestKind>(
  handlers: Handlers,
  kind: K,
  req: RequestMsg<K>,
): Promise<ReplyData<K>> {
  const handler: Handlers[K] = handlers[kind];
  return handler(req);
}
