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
  const refused = (code: string, pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof HubError && e.code === code, String(e));
    assert.match(e.message, pattern);
    return true;
  };
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
