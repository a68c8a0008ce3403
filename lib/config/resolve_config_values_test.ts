/** Values as they are read: secrets verbatim, IP addresses, home paths, decimal numbers, spans. */
import assert from "node:assert/strict";
import { ConfigError, redact } from "../errors.ts";
import { resolveConfig } from "./resolve_config.ts";

Deno.test("PLUMISE_KEYSTORE_PASSWORD is taken verbatim: spaces around it are part of the password", () => {
  for (const source of ["env", "dotenv"] as const) {
    const r = resolveConfig({ [source]: { PLUMISE_KEYSTORE_PASSWORD: "  hunter2  " } });
    assert.equal(r.config.keystorePassword, "  hunter2  ", source);
    assert.ok(!redact("pw '  hunter2  '").includes("hunter2"));
  }
  // other strings are still trimmed
  assert.equal(resolveConfig({ env: { MODEL_NAME: "  org/m  " } }).config.model, "org/m");
});

Deno.test("PETALS_ANNOUNCE_IP and PETALS_HOST must be IP addresses (a config error, exit 2, not a crash at start)", () => {
  for (
    const [env, value] of [["PETALS_ANNOUNCE_IP", "1.2.3"], ["PETALS_HOST", "999.1.1.1"], [
      "PETALS_HOST",
      "not a host",
    ]]
  ) {
    assert.throws(
      () => resolveConfig({ env: { [env]: value } }),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes(`${env}=`) &&
        /must be an IPv4 or IPv6 address/.test(e.message),
      `${env}=${value}`,
    );
  }
  const ok = resolveConfig({ env: { PETALS_ANNOUNCE_IP: "203.0.113.7", PETALS_HOST: "::" } }).config;
  assert.deepEqual([ok.announceIp, ok.p2pHost], ["203.0.113.7", "::"]);
});

Deno.test("paths: a leading ~/ is the home directory (no shell expands it in a .env); ~user is refused", () => {
  const home = Deno.env.get("HOME");
  if (!home) return;
  const r = resolveConfig({ dotenv: { PLUMISE_DATA_DIR: "~/plumise-data" } });
  assert.equal(r.config.dataDir, `${home.replace(/\/+$/, "")}/plumise-data`);
  assert.throws(
    () => resolveConfig({ dotenv: { PLUMISE_DATA_DIR: "~bob/data" } }),
    /~user paths are not expanded/,
  );
});

Deno.test("numbers are decimal: 0x10 and 0b11 are refused, 1e3 and 2.5 read, -0 is 0", () => {
  for (const v of ["0x10", "0b11", "0o7", "Infinity", "1_000"]) {
    assert.throws(() => resolveConfig({ env: { THROUGHPUT: v } }), /THROUGHPUT/, v);
  }
  assert.equal(resolveConfig({ env: { THROUGHPUT: "1e3" } }).config.throughput, 1000);
  assert.equal(resolveConfig({ env: { THROUGHPUT: "2.5" } }).config.throughput, 2.5);
  assert.ok(Object.is(resolveConfig({ env: { API_PORT: "-0" } }).config.apiPort, 0));
});

Deno.test("BLOCK_INDICES ends at 1024 at most (it sets NUM_BLOCKS, whose bound it would bypass)", () => {
  assert.throws(
    () => resolveConfig({ flags: { blockIndices: "0:99999999999999999999" } }),
    /blocks end at 1024 at most/,
  );
  assert.equal(resolveConfig({ flags: { blockIndices: "1000:1024" } }).config.numBlocks, 24);
});

Deno.test("DIRECT_PORT is 1024 or above (servers link only to such ports), 0 or -1", () => {
  assert.throws(
    () => resolveConfig({ env: { DIRECT_PORT: "443" } }),
    /DIRECT_PORT=443: must be 1024 or above/,
  );
  // given as a flag, it is named as the flag (before: DIRECT_PORT=80 for --direct-port 80)
  assert.throws(
    () => resolveConfig({ flags: { directPort: "80" } }),
    /--direct-port=80: must be 1024 or above/,
  );
  for (const v of ["0", "-1", "1024", "31332"]) {
    assert.equal(resolveConfig({ env: { DIRECT_PORT: v } }).config.directPort, Number(v));
  }
});

Deno.test("the API, swarm and direct ports must differ where they share an address", () => {
  // before: accepted, and serve failed on its own second bind with DIRECT_PORT_IN_USE, "another process"
  assert.throws(
    () => resolveConfig({ flags: { p2pPort: "46330", directPort: "46330" } }),
    /--port and --direct-port are both 46330: the node binds each port once/,
  );
  assert.throws(
    () => resolveConfig({ env: { API_PORT: "46330", PETALS_PORT: "46330" } }),
    /API_PORT and PETALS_PORT/,
  );
  // any free port (0) each, off (-1), or different addresses are fine
  resolveConfig({ flags: { p2pPort: "0", directPort: "0", apiPort: "0" } });
  resolveConfig({ flags: { p2pPort: "46330", directPort: "-1" } });
  resolveConfig({
    env: { API_HOST: "127.0.0.1", API_PORT: "46330", PETALS_HOST: "10.1.2.3", PETALS_PORT: "46330" },
  });
});
