import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { ConfigError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import { lockDataDir, PID_FILE } from "./data_dir_lock.ts";
import { createNode } from "./node.ts";
import type { NodeParts } from "./types.ts";

function isLocked(err: unknown, pid: number, dir: string): boolean {
  assert.ok(err instanceof ConfigError, String(err));
  assert.equal(err.code, "DATA_DIR_LOCKED");
  assert.equal(err.exitCode, 2);
  assert.ok(err.message.includes(dir), err.message);
  assert.match(err.message, new RegExp(`pid ${pid}\\b`));
  assert.match(err.hint, /--data-dir/);
  return true;
}

Deno.test("data dir lock: one holder at a time, the holder's pid named, released on release()", async () => {
  const dir = `${await Deno.makeTempDir({ prefix: "plumise-lock-" })}/data`; // created by the lock
  try {
    const a = await lockDataDir(dir);
    assert.equal(a.pid, Deno.pid);
    assert.equal((await Deno.readTextFile(`${dir}/serve.pid`)).trim(), String(Deno.pid));
    await assert.rejects(lockDataDir(dir), (err) => isLocked(err, Deno.pid, dir));
    await a.release();
    await a.release(); // idempotent
    const b = await lockDataDir(dir);
    await b.release();
    // A pid file left behind by a killed process does not block: only the lock counts.
    await Deno.writeTextFile(`${dir}/serve.pid`, "999999\n");
    const c = await lockDataDir(dir);
    assert.equal((await Deno.readTextFile(`${dir}/serve.pid`)).trim(), String(Deno.pid));
    await c.release();
  } finally {
    await Deno.remove(dir.replace(/\/data$/, ""), { recursive: true });
  }
});

Deno.test("data dir lock: an unusable data dir is a config error naming it", async () => {
  const root = await Deno.makeTempDir({ prefix: "plumise-lock-" });
  try {
    await Deno.writeTextFile(`${root}/file`, "x");
    await assert.rejects(lockDataDir(`${root}/file/data`), (err) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.code, "DATA_DIR_UNUSABLE");
      assert.ok(err.message.includes(`${root}/file/data`));
      return true;
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a node holds its data dir from start to stop; a second node on the same dir fails before building parts", async () => {
  const root = await Deno.makeTempDir({ prefix: "plumise-lock-" });
  const config = resolveConfig({
    env: { PLUMISE_DATA_DIR: `${root}/data`, API_PORT: "0", API_HOST: "127.0.0.1" },
    flags: { offline: true },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
  let release!: (err: Error) => void;
  const built: string[] = [];
  let entered = Promise.withResolvers<void>();
  const blocked = (name: string) => () => {
    built.push(name);
    entered.resolve();
    return new Promise<NodeParts>((_resolve, reject) => (release = reject));
  };
  try {
    const { logger, records } = memoryLogger("info");
    const a = createNode(config, { parts: blocked("a"), logger, lockDataDir: true });
    const aStart = a.start().catch((e) => e);
    await entered.promise;
    assert.ok(records.some((r) => r.msg === "data dir locked" && r.pid === Deno.pid));
    const b = createNode(config, { parts: blocked("b"), lockDataDir: true });
    await assert.rejects(b.start(), (err) => isLocked(err, Deno.pid, `${root}/data`));
    assert.deepEqual(built, ["a"], "the second node stopped before building anything");
    release(new Error("stop here"));
    assert.match(String(await aStart), /stop here/);
    // a's failed start released the lock
    entered = Promise.withResolvers<void>();
    const c = createNode(config, { parts: blocked("c"), lockDataDir: true });
    const cStart = c.start().catch((e) => e);
    await entered.promise;
    assert.deepEqual(built, ["a", "c"]);
    release(new Error("done"));
    await cStart;
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("data dir lock: a symlink planted at serve.pid is replaced, never written through", async () => {
  const dir = await Deno.makeTempDir();
  const victim = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(victim, "IMPORTANT CONTENT\n");
    await Deno.symlink(victim, `${dir}/${PID_FILE}`);
    const lock = await lockDataDir(dir);
    assert.equal(await Deno.readTextFile(victim), "IMPORTANT CONTENT\n");
    assert.equal((await Deno.lstat(`${dir}/${PID_FILE}`)).isSymlink, false);
    assert.equal((await Deno.readTextFile(`${dir}/${PID_FILE}`)).trim(), String(Deno.pid));
    await lock.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(victim);
  }
});

Deno.test("data dir lock: a peer identity outside the data dir is locked too (two data dirs, one identity)", async () => {
  const root = await Deno.makeTempDir();
  try {
    const id = `${root}/shared.key`;
    const a = await lockDataDir(`${root}/d1`, { identityPath: id });
    await assert.rejects(
      lockDataDir(`${root}/d2`, { identityPath: id }),
      (e: unknown) => e instanceof ConfigError && e.code === "IDENTITY_LOCKED" && e.message.includes(id),
    );
    // the second data dir was let go again: it takes a node with its own identity
    const b = await lockDataDir(`${root}/d2`, { identityPath: `${root}/d2/identity.key` });
    await b.release();
    await a.release();
    const again = await lockDataDir(`${root}/d2`, { identityPath: id });
    await again.release();
    // an identity inside a data dir is locked too: another node naming it from elsewhere fails
    const c = await lockDataDir(`${root}/d3`, { identityPath: `${root}/d3/identity.key` });
    await assert.rejects(
      lockDataDir(`${root}/d4`, { identityPath: `${root}/d3/identity.key` }),
      (e: unknown) => e instanceof ConfigError && e.code === "IDENTITY_LOCKED",
    );
    await c.release();
    // a fresh node whose identity directory does not exist yet starts (it was DATA_DIR_UNUSABLE)
    const fresh = await lockDataDir(`${root}/d5`, { identityPath: `${root}/keys/new/identity.key` });
    await fresh.release();
    await fresh.release(); // idempotent
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("data dir lock: says when other users may write in the data dir", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const own = await lockDataDir(dir);
    assert.equal(own.writableByOthers, false);
    await own.release();
    await Deno.chmod(dir, 0o777);
    const shared = await lockDataDir(dir);
    assert.equal(shared.writableByOthers, true);
    await shared.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
