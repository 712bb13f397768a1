import assert from "node:assert/strict";
import { FolderInUseError, lockFolder } from "./lock.ts";

const code = (dir: string, holdMs: number) => `
import { lockFolder } from ${JSON.stringify(new URL("./lock.ts", import.meta.url).href)};
using _lock = await lockFolder(${JSON.stringify(dir)}, "Test folder", 200);
console.log("locked");
await new Promise((r) => setTimeout(r, ${holdMs}));
`;

async function runLocker(dir: string, holdMs: number) {
  return await new Deno.Command(Deno.execPath(), {
    args: ["eval", code(dir, holdMs)],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("a folder locked by one process is refused to another, then free again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    {
      using _held = await lockFolder(dir, "Test folder");
      const other = await runLocker(dir, 0);
      assert.equal(other.success, false);
      assert.match(
        new TextDecoder().decode(other.stderr),
        /FolderInUseError: Test folder ".*" is in use by another process/,
      );
    }
    const after = await runLocker(dir, 0); // disposed: free again
    assert.equal(new TextDecoder().decode(after.stdout).trim(), "locked");
    assert.deepEqual([...Deno.readDirSync(dir)], [], "the lock wrote into the folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lockFolder needs an existing folder", async () => {
  await assert.rejects(
    lockFolder("/nonexistent/drftpd-lock-test", "Test folder"),
    Deno.errors.NotFound,
  );
  assert.equal(new FolderInUseError("Root", "/r").message.startsWith('Root "/r" is in use'), true);
});
