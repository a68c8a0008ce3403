import assert from "node:assert/strict";
import { HubError } from "../errors.ts";
import { cachedFile, hubFile, repoCacheDir } from "./hub_download.ts";

Deno.test("hub cache layout: models--org--name, refs and snapshots resolve without network", async () => {
  const home = await Deno.makeTempDir();
  assert.equal(repoCacheDir(home, "bigscience/bloom-560m"), `${home}/hub/models--bigscience--bloom-560m`);
  assert.equal(await cachedFile(home, "org/m", "config.json"), undefined);
  const dir = repoCacheDir(home, "org/m");
  const commit = "a".repeat(40);
  await Deno.mkdir(`${dir}/refs`, { recursive: true });
  await Deno.mkdir(`${dir}/snapshots/${commit}`, { recursive: true });
  await Deno.writeTextFile(`${dir}/refs/main`, commit + "\n");
  assert.equal(await cachedFile(home, "org/m", "config.json"), undefined);
  await Deno.writeTextFile(`${dir}/snapshots/${commit}/config.json`, "{}");
  assert.equal(await cachedFile(home, "org/m", "config.json"), `${dir}/snapshots/${commit}/config.json`);
  assert.equal(
    await cachedFile(home, "org/m", "config.json", commit),
    `${dir}/snapshots/${commit}/config.json`,
  );
  assert.equal(await cachedFile(home, "org/m", "config.json", "dev"), undefined);
});

/** An assert.rejects check: a HubError of `code` whose message matches `pattern`. */
const refused = (code: string, pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof HubError && e.code === code, String(e));
  assert.match(e.message, pattern);
  return true;
};

Deno.test("hub downloads: names that would leave the cache are refused, from the caller or from the hub", async () => {
  const home = await Deno.makeTempDir();
  let answer = { commit: "../../../../outside", etag: "0".repeat(64) };
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    requests.push(`${req.method} ${new URL(req.url).pathname}`);
    return new Response(req.method === "HEAD" ? null : "{}", {
      headers: { "x-repo-commit": answer.commit, etag: `"${answer.etag}"`, "content-length": "2" },
    });
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  const get = (file: string, revision?: string) =>
    hubFile({ repo: "org/m", file, revision, endpoint, hfHome: home });
  try {
    // from the caller (a checkpoint's index, REVISION): refused before any request
    await assert.rejects(
      get("../../../x.json"),
      refused("HUB_BAD_PATH", /file "\.\.\/\.\.\/\.\.\/x\.json" of org\/m/),
    );
    await assert.rejects(get("config.json", "../../x"), refused("HUB_BAD_PATH", /revision "\.\.\/\.\.\/x"/));
    assert.deepEqual(requests, []);
    // from the hub: a commit or an ETag that is not a plain name
    await assert.rejects(
      get("config.json"),
      refused("HUB_BAD_PATH", /commit "\.\.\/\.\.\/\.\.\/\.\.\/outside"/),
    );
    answer = { commit: "a".repeat(40), etag: "../../../../../../tmp/evil" };
    await assert.rejects(get("config.json"), refused("HUB_BAD_PATH", /ETag "\.\.\/.*evil": not plain names/));
    // nothing was written, in the cache or outside it
    const written: string[] = [];
    for await (const e of Deno.readDir(home)) written.push(e.name);
    assert.deepEqual(written, []);
    // an honest answer still downloads
    answer = { commit: "b".repeat(40), etag: "c".repeat(40) };
    assert.equal(await Deno.readTextFile(await get("config.json")), "{}");
  } finally {
    await server.shutdown();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("hub downloads: a redirect off http(s), more bytes than announced or a bad size are refused", async () => {
  const home = await Deno.makeTempDir();
  const secret = await Deno.makeTempFile();
  await Deno.writeTextFile(secret, "PLUMISE_PRIVATE_KEY=0x12\n");
  let mode: "file" | "endless" | "negative" | "empty" | "nested" = "file";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const base = { "x-repo-commit": "a".repeat(40), etag: `"${"e".repeat(40)}"` };
    if (mode === "file" && req.method === "HEAD") {
      return new Response(null, {
        status: 302,
        headers: {
          ...base,
          location: `file://${secret}`,
          "x-linked-size": "25",
          "x-linked-etag": "f".repeat(40),
        },
      });
    }
    if (mode === "negative") return new Response(null, { headers: { ...base, "x-linked-size": "-5" } });
    if (mode === "empty") return new Response(null, { headers: base });
    if (req.method === "HEAD") return new Response(null, { headers: { ...base, "content-length": "10" } });
    if (mode === "nested") return new Response("0123456789", { headers: base });
    // a body that never ends
    const chunk = new Uint8Array(1 << 16);
    return new Response(new ReadableStream({ pull: (c) => c.enqueue(chunk) }), { headers: base });
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  const get = (revision?: string) =>
    hubFile({ repo: "org/m", file: "config.json", revision, endpoint, hfHome: home });
  try {
    // a local file is not the repo's config.json
    await assert.rejects(
      get(),
      refused("HUB_BAD_PATH", /org\/m\/config\.json to "file:\/\/.*", not an http\(s\) URL/),
    );
    mode = "endless";
    await assert.rejects(
      get(),
      refused("HUB_CORRUPT", /more of org\/m\/config\.json than the 10 bytes it announced/),
    );
    const blobs = `${repoCacheDir(home, "org/m")}/blobs`;
    const left = [];
    for await (const e of Deno.readDir(blobs)) left.push((await Deno.stat(`${blobs}/${e.name}`)).size);
    assert.ok(left.every((n) => n <= 10), `kept ${left}`);
    mode = "negative";
    await assert.rejects(
      get(),
      refused("HUB_HTTP_ERROR", /size for org\/m\/config\.json is "-5": not a byte count/),
    );
    // an empty file is one
    mode = "empty";
    assert.equal(await Deno.readTextFile(await get()), "");
    // a revision such as refs/pr/1 is kept as a nested ref
    mode = "nested";
    assert.equal(await Deno.readTextFile(await get("refs/pr/1")), "0123456789");
    assert.equal(
      (await Deno.readTextFile(`${repoCacheDir(home, "org/m")}/refs/refs/pr/1`)).trim(),
      "a".repeat(40),
    );
  } finally {
    await server.shutdown();
    await Deno.remove(home, { recursive: true });
    await Deno.remove(secret);
  }
});

Deno.test("hub downloads: a trickle that never trips the idle timer still counts as stalled", async () => {
  const home = await Deno.makeTempDir();
  const base = { "x-repo-commit": "a".repeat(40), etag: `"${"d".repeat(40)}"` };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (req.method === "HEAD") {
      return new Response(null, { headers: { ...base, "content-length": "1000000" } });
    }
    let timer: ReturnType<typeof setInterval> | undefined;
    const body = new ReadableStream({
      start(c) {
        timer = setInterval(() => c.enqueue(new Uint8Array(1)), 50); // a byte every 50 ms
      },
      cancel() {
        clearInterval(timer);
      },
    });
    return new Response(body, { headers: base });
  });
  try {
    await assert.rejects(
      hubFile({
        repo: "org/m",
        file: "config.json",
        endpoint: `http://127.0.0.1:${server.addr.port}`,
        hfHome: home,
        idleTimeoutMs: 300,
        attempts: 1,
      }),
      (e: unknown) =>
        e instanceof HubError && e.code === "HUB_TIMEOUT" && /bytes in 300 ms: too slow/.test(e.message),
    );
  } finally {
    await server.shutdown();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("hub downloads: a full disk is HUB_DISK_FULL at once, not five retries", async () => {
  const home = await Deno.makeTempDir();
  let gets = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const headers = { "x-repo-commit": "a".repeat(40), etag: `"${"e".repeat(40)}"`, "content-length": "10" };
    if (req.method === "GET") gets++;
    return new Response(req.method === "HEAD" ? null : "0123456789", { headers });
  });
  try {
    // the partial file's writes land on /dev/full: every write fails with ENOSPC (os error 28)
    const blobs = `${repoCacheDir(home, "org/m")}/blobs`;
    await Deno.mkdir(blobs, { recursive: true });
    await Deno.symlink("/dev/full", `${blobs}/${"e".repeat(40)}.incomplete`);
    const err = await hubFile({
      repo: "org/m",
      file: "config.json",
      endpoint: `http://127.0.0.1:${server.addr.port}`,
      hfHome: home,
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof HubError && err.code === "HUB_DISK_FULL", String(err));
    assert.match(err.message, new RegExp(`HF_HOME ${home}`));
    assert.match(err.hint, /free space there, or point HF_HOME at a larger disk/);
    assert.equal(gets, 1, "before: HUB_INTERRUPTED after 5 attempts");
  } finally {
    await server.shutdown();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("hub downloads: an unreachable hub says why (its connection error), not only 'fetch failed'", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const home = await Deno.makeTempDir();
  try {
    const err = await hubFile({
      repo: "org/m",
      file: "config.json",
      endpoint: `http://127.0.0.1:${port}`,
      hfHome: home,
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof HubError && err.code === "HUB_UNREACHABLE", String(err));
    // before: "cannot reach the hub for org/m/config.json: fetch failed"
    assert.match(err.message, /fetch failed: .*(refused|os error 111)/i);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
