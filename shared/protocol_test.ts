import assert from "node:assert/strict";
import {
  ERROR_CODES,
  MAX_REMERGE_BATCH,
  MAX_RESCAN_PATHS,
  parseFromMaster,
  parseFromSlave,
  parseReply,
  type RequestBody,
  type RequestKind,
  REQUESTS,
} from "./protocol.ts";

Deno.test("remerge_request: since, optional subtree paths, master → slave only", () => {
  assert.deepEqual(parseFromMaster({ type: "remerge_request", since: 0 }), {
    type: "remerge_request",
    since: 0,
  });
  parseFromMaster({ type: "remerge_request", since: 1_790_000_000_000, paths: ["/a", "/b c"] });
  for (
    const bad of [
      { type: "remerge_request" },
      { type: "remerge_request", since: -1 },
      { type: "remerge_request", since: 1.5 },
      { type: "remerge_request", since: 0, paths: "/a" },
      { type: "remerge_request", since: 0, paths: [1] },
      { type: "remerge_request", since: 0, paths: Array(MAX_RESCAN_PATHS + 1).fill("/a") },
      { type: "remerge_request", since: 0, extra: 1 },
    ]
  ) {
    assert.throws(() => parseFromMaster(bad), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => parseFromSlave({ type: "remerge_request", since: 0 }), /unknown message/);
});

Deno.test("remerge batches may carry directory listings; remerge_done carries scannedAt", () => {
  const dirs = [{ path: "/a", subdirs: ["b", "c d"], complete: true }];
  parseFromSlave({ type: "remerge", entries: [] });
  parseFromSlave({ type: "remerge", entries: [{ path: "/a/f", size: 1, mtime: 2 }], dirs });
  parseFromSlave({ type: "remerge_done", files: 3, scannedAt: 1_790_000_000_000 });
  const listing = (d: Record<string, unknown>) => ({ type: "remerge", entries: [], dirs: [d] });
  for (
    const bad of [
      listing({ path: "/a", subdirs: ["x/y"], complete: true }),
      listing({ path: "/a", subdirs: [".."], complete: true }),
      listing({ path: "/a", subdirs: [""], complete: true }),
      listing({ path: "/a", subdirs: ["n\0"], complete: true }),
      listing({ path: "/a", subdirs: [], complete: "yes" }),
      listing({ path: "/a", subdirs: [] }),
      listing({ path: "/a", subdirs: [], complete: true, more: 1 }),
      listing({ path: "/a", subdirs: Array(MAX_REMERGE_BATCH + 1).fill("x"), complete: true }),
      { type: "remerge", entries: [], dirs: {} },
      { type: "remerge_done", files: 3 },
    ]
  ) {
    assert.throws(() => parseFromSlave(bad), TypeError, JSON.stringify(bad));
  }
});

Deno.test("set_mtime: path and an integer time (before 1970 too), master → slave only", () => {
  const ok = { type: "set_mtime", id: 3, path: "/a b/f", mtime: Date.UTC(2001, 0, 1) };
  assert.deepEqual(parseFromMaster(ok), ok);
  parseFromMaster({ ...ok, mtime: -1000 });
  for (
    const bad of [
      { ...ok, mtime: 1.5 },
      { ...ok, mtime: "2001" },
      { ...ok, mtime: Number.MAX_VALUE },
      { type: "set_mtime", id: 3, path: "/f" },
      { ...ok, extra: true },
    ]
  ) {
    assert.throws(() => parseFromMaster(bad), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => parseFromSlave(ok), /unknown message/);
});

Deno.test("replies are checked against the shape their request declares", () => {
  assert.deepEqual(parseReply("listen", { port: 5000, host: "10.0.0.1" }), {
    port: 5000,
    host: "10.0.0.1",
  });
  assert.deepEqual(parseReply("checksum", { crc32: 0xffff_ffff, size: 3 }), {
    crc32: 0xffff_ffff,
    size: 3,
  });
  assert.deepEqual(parseReply("delete", {}), {});
  const result = { bytes: 3, size: 3, crc32: 1, crcWhole: true, ms: 0, mtime: -5 };
  parseReply("transfer", result);
  parseReply("transfer", { ...result, tls: { protocol: "TLSv1.3", resumed: true } });
  parseReply("transfer", { ...result, kept: true });
  for (
    const [kind, bad, field] of [
      ["listen", { port: "5000", host: "h" }, "port"],
      ["listen", { port: 0, host: "h" }, "port"],
      ["listen", { port: 70000, host: "h" }, "port"],
      ["listen", { port: 5000 }, "host"],
      ["listen", { port: 5000, host: "h", extra: 1 }, "extra"],
      ["checksum", { crc32: 2 ** 32, size: 3 }, "crc32"],
      ["checksum", { crc32: -1, size: 3 }, "crc32"],
      ["delete", { anything: 1 }, "anything"],
      ["transfer", { ...result, crcWhole: 1 }, "crcWhole"],
      ["transfer", { ...result, tls: { protocol: "x" } }, "tls"],
      ["transfer", { ...result, kept: "yes" }, "kept"],
      ["listen", [1], "data"],
      ["listen", null, "data"],
    ] as const
  ) {
    assert.throws(() => parseReply(kind, bad), new RegExp(`"${field}" in the "${kind}" reply`));
  }
});

Deno.test("every request kind is accepted by the slave with an id, and only with one", () => {
  const bodies: { [K in RequestKind]: RequestBody<K> } = {
    listen: { xfer: "x", peer: null },
    transfer: {
      xfer: "x",
      dir: "send",
      path: "/f",
      offset: 0,
      append: false,
      ascii: false,
      endpoint: { kind: "active", host: "h", port: 21 },
      peer: "h",
      tls: "none",
    },
    abort: { xfer: "x" },
    delete: { path: "/f" },
    rename: { from: "/a", to: "/b" },
    rmdir: { path: "/d" },
    checksum: { path: "/f" },
    set_mtime: { path: "/f", mtime: 0 },
  };
  for (const kind of Object.keys(REQUESTS) as RequestKind[]) {
    const frame = { type: kind, id: 1, ...bodies[kind] };
    assert.deepEqual(parseFromMaster(frame), frame);
    assert.throws(() => parseFromMaster({ type: kind, ...bodies[kind] }), /bad field "id"/);
    assert.throws(() => parseFromSlave(frame), /unknown message type/);
  }
});

Deno.test("a sibling send's source is a closed object: holder, TLS role, size, CRC32, keep", () => {
  const send = {
    type: "transfer",
    id: 1,
    xfer: "client",
    dir: "send",
    path: "/f",
    offset: 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: null,
    tls: "server",
  };
  const source = { xfer: "holder", peer: "10.0.0.2", tls: "none", size: 5, crc32: 7, keep: true };
  assert.deepEqual(parseFromMaster({ ...send, source }), { ...send, source });
  parseFromMaster({ ...send, source: { ...source, crc32: null, keep: false } });
  for (
    const bad of [
      { ...source, tls: "client" }, // the holder always dials in: this slave is never its client
      { ...source, crc32: 2 ** 32 },
      { ...source, size: -1 },
      { ...source, keep: 1 },
      { ...source, extra: 1 },
      { xfer: "holder", peer: "10.0.0.2", tls: "none", size: 5, crc32: 7 },
    ]
  ) {
    assert.throws(
      () => parseFromMaster({ ...send, source: bad }),
      /bad field "source" in "transfer" message/,
    );
  }
});

Deno.test("error codes come from ERROR_CODES; anything else drops the link", () => {
  for (const code of ERROR_CODES) parseFromSlave({ type: "error", id: 1, code, message: "m" });
  assert.throws(
    () => parseFromSlave({ type: "error", id: 1, code: "nope", message: "m" }),
    /bad field "code" in "error" message/,
  );
  assert.throws(
    () => parseFromSlave({ type: "transfer", id: 1 }),
    /unknown message type: "transfer"/,
  );
  assert.throws(
    () => parseFromSlave({ type: "disk", free: 1, total: 2, more: 3 }),
    /unknown field "more" in "disk" message/,
  );
});
