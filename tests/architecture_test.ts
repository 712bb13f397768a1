/**
 * Gates on the shape of the code: no import cycle anywhere in what `main.ts` loads (static and
 * dynamic imports, type-only ones included), and every module under master/, slave/ and shared/
 * named in ARCHITECTURE.md.
 */

import assert from "node:assert/strict";
import { repoRoot, run } from "../testing/mod.ts";

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

/** The repository's own modules and their imports of each other, from `deno info --json`. */
async function importGraph(entry: string): Promise<Map<string, string[]>> {
  const r = await run(Deno.execPath(), ["info", "--json", entry], {
    cwd: repoRoot,
    timeoutMs: 120_000,
  });
  assert.ok(r.success, `deno info failed: ${r.stderr}`);
  const info = JSON.parse(r.stdout) as { modules: InfoModule[] };
  const root = new URL(".", `file://${repoRoot}`).href;
  const local = (s: string) => s.startsWith(root) && !s.includes("/node_modules/");
  const graph = new Map<string, string[]>();
  for (const m of info.modules) {
    if (!local(m.specifier)) continue;
    const deps = new Set<string>();
    for (const d of m.dependencies ?? []) {
      for (const to of [d.code?.specifier, d.type?.specifier]) {
        if (to !== undefined && local(to)) deps.add(to.slice(root.length));
      }
    }
    graph.set(m.specifier.slice(root.length), [...deps]);
  }
  return graph;
}

/** Strongly connected components with more than one module (or a module importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

Deno.test("cycles finds every loop and nothing else", () => {
  const g = new Map([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a", "d"]],
    ["d", []],
    ["e", ["e"]],
    ["f", ["d"]],
  ]);
  assert.deepEqual(cycles(g), [["a", "b", "c"], ["e"]]);
  assert.deepEqual(cycles(new Map([["x", ["y"]], ["y", []]])), []);
});

Deno.test("no import cycle in anything main.ts loads", async () => {
  const graph = await importGraph("main.ts");
  assert.ok(graph.size > 30, `deno info listed only ${graph.size} modules`);
  const found = cycles(graph).map((c) => c.join(" → "));
  assert.deepEqual(found, [], `import cycles:\n${found.join("\n")}`);
});

/** Every `.ts` module (tests excluded) under `dir`, as repository-relative paths. */
async function modulesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(`${repoRoot}${rel}`)) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Whether ARCHITECTURE.md names `path`: as itself in backticks, as a backticked tail of it with
 * a folder (`filelist/_cache.ts`), or as a backticked bare file name on a line that also names a
 * module of the same folder (a table row such as "`master/ftp/a.ts`, `b.ts`").
 */
export function isNamed(doc: string, path: string): boolean {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const base = path.slice(dir.length + 1);
  for (const line of doc.split("\n")) {
    const tokens = [...line.matchAll(/`([^`\s]+?)(?:#[^`]*)?`/g)].map((m) => m[1]!);
    for (const t of tokens) {
      if (t === path) return true;
      if (t.includes("/") && path.endsWith(`/${t}`)) return true;
      if (t === base && tokens.some((o) => o.startsWith(`${dir}/`))) return true;
    }
  }
  return false;
}

Deno.test("isNamed accepts full paths, folder tails and short names in a row", () => {
  const doc = [
    "| `master/ftp/cmd_basic.ts`, `cmd_files.ts` | handlers |",
    "read cache (`filelist/_cache.ts`) and `shared/paths.ts#containedRealPath`",
    "a lone `lonely.ts`",
  ].join("\n");
  assert.ok(isNamed(doc, "master/ftp/cmd_basic.ts"));
  assert.ok(isNamed(doc, "master/ftp/cmd_files.ts"));
  assert.ok(isNamed(doc, "master/filelist/_cache.ts"));
  assert.ok(isNamed(doc, "shared/paths.ts"));
  assert.ok(!isNamed(doc, "master/ftp/lonely.ts"));
  assert.ok(!isNamed(doc, "slave/cmd_files.ts"));
  assert.ok(!isNamed(doc, "master/ftp/session.ts"));
});

Deno.test("ARCHITECTURE.md names every module under master/, slave/ and shared/", async () => {
  const doc = await Deno.readTextFile(`${repoRoot}ARCHITECTURE.md`);
  const modules = [
    ...await modulesUnder("master"),
    ...await modulesUnder("slave"),
    ...await modulesUnder("shared"),
  ];
  assert.ok(modules.length > 30);
  const missing = modules.filter((m) => !isNamed(doc, m));
  assert.deepEqual(missing, [], `modules ARCHITECTURE.md does not name:\n${missing.join("\n")}`);
});
