import assert from "node:assert/strict";
import { cachedFile, repoCacheDir } from "./hub_download.ts";

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
