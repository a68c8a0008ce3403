import assert from "node:assert/strict";
import { parse as parseDotenv } from "dotenv";
import { mergeEnvFile, parseEnvFile, quoteEnvValue } from "./env_file.ts";

Deno.test("env file: merging keeps other lines, replaces managed keys in place and drops removed ones", () => {
  const before =
    "# my settings\nPLUMISE_RPC_URL=http://rpc:26902\nPLUMISE_TIER=lite\nPLUMISE_PRIVATE_KEY=0xabc\n";
  const after = mergeEnvFile(
    before,
    new Map([["PLUMISE_TIER", "pro"], ["PLUMISE_KEYSTORE_PASSWORD", 'p a"s\\s']]),
    [
      "PLUMISE_PRIVATE_KEY",
    ],
  );
  assert.equal(
    after,
    "# my settings\nPLUMISE_RPC_URL=http://rpc:26902\nPLUMISE_TIER=pro\nPLUMISE_KEYSTORE_PASSWORD='p a\"s\\s'\n",
  );
  assert.deepEqual(Object.fromEntries(parseEnvFile(after)), parseDotenv(after));
  assert.equal(parseEnvFile(after).get("PLUMISE_KEYSTORE_PASSWORD"), 'p a"s\\s');
  // an empty file gets the header
  assert.equal(mergeEnvFile("", new Map([["A", "1"]]), [], "# head"), "# head\nA=1\n");
});

Deno.test("env file: values are quoted only when needed; multi-line values are refused", () => {
  assert.equal(quoteEnvValue("K", "0xdeadbeef"), "0xdeadbeef");
  assert.equal(quoteEnvValue("K", "/etc/plumise/k.json"), "/etc/plumise/k.json");
  assert.equal(quoteEnvValue("K", "a b"), "'a b'");
  assert.equal(quoteEnvValue("K", "$HOME"), "'$HOME'");
  assert.equal(quoteEnvValue("K", "it's"), '"it\'s"');
  assert.throws(() => quoteEnvValue("K", "it's \\"), /cannot be written/);
  assert.throws(() => quoteEnvValue("K", "a\nb"), /cannot span lines/);
});
