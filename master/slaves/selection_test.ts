import assert from "node:assert/strict";
import {
  type Candidate,
  chooseSlave,
  MIN_FREE_BYTES,
  NoSlaveError,
  pickForDownload,
  pickForUpload,
} from "./selection.ts";

const GB = 1024 ** 3;
const c = (name: string, o: Partial<Candidate> = {}): Candidate => ({
  name,
  available: true,
  activeTransfers: 0,
  freeBytes: 10 * GB,
  lastPicked: 0,
  ...o,
});

Deno.test("pickForUpload prefers fewer active transfers", () => {
  const got = pickForUpload([c("a", { activeTransfers: 2 }), c("b", { activeTransfers: 1 })]);
  assert.equal(got?.name, "b");
});

Deno.test("pickForUpload prefers clearly more free space, then least recently picked", () => {
  assert.equal(pickForUpload([c("a", { freeBytes: 5 * GB }), c("b")])?.name, "b");
  assert.equal(
    pickForUpload([c("a", { lastPicked: 5 }), c("b", { lastPicked: 3, freeBytes: 9.9 * GB })])
      ?.name,
    "b",
  );
});

Deno.test("pickForUpload skips unavailable and full slaves", () => {
  assert.equal(pickForUpload([c("a", { available: false }), c("b", { freeBytes: 1 })]), null);
  assert.equal(pickForUpload([c("a", { freeBytes: MIN_FREE_BYTES })])?.name, "a");
});

Deno.test("pickForDownload only considers available holders", () => {
  const all = [c("a"), c("b", { available: false }), c("c", { activeTransfers: 3 })];
  assert.equal(pickForDownload(all, ["b", "c"])?.name, "c");
  assert.equal(pickForDownload(all, ["b"]), null);
  assert.equal(pickForDownload(all, []), null);
});

Deno.test("chooseSlave: downloads need a holder, resumes too, new files go where there is room", () => {
  const slaves = [c("a", { freeBytes: MIN_FREE_BYTES * 4 }), c("b", { available: false })];
  const want = { path: "/f", resuming: false };
  assert.equal(chooseSlave(slaves, { ...want, kind: "download", holders: ["a", "b"] }).name, "a");
  assert.throws(
    () => chooseSlave(slaves, { ...want, kind: "download", holders: ["b"] }),
    new NoSlaveError("/f is not available: its slave (b) is offline"),
  );
  assert.throws(
    () => chooseSlave(slaves, { ...want, kind: "download", holders: [] }),
    new NoSlaveError("/f is not available: no slave holds it"),
  );
  assert.throws(
    () => chooseSlave(slaves, { ...want, kind: "upload", holders: ["b"], resuming: true }),
    NoSlaveError,
  );
  assert.equal(chooseSlave(slaves, { ...want, kind: "upload", holders: ["b"] }).name, "a");
  assert.throws(
    () => chooseSlave([slaves[1]!], { ...want, kind: "upload", holders: [] }),
    new NoSlaveError("No slave is online with free space for uploads"),
  );
});
