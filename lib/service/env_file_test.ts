import assert from "node:assert/strict";
import { parse as parseDotenv } from "dotenv";
import { ConfigError } from "../errors.ts";
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

Deno.test("env file: lines systemd reads otherwise than dotenv (export, a comment after a bare value) are rewritten", () => {
  const text = [
    "# upstream settings",
    "export PLUMISE_PRIVATE_KEY=0xabc",
    "NUM_BLOCKS=4 # four",
    "MODEL_NAME='org/m'",
    "PETALS_HOST=0.0.0.0",
    "",
  ].join("\n");
  const out = mergeEnvFile(text, new Map([["PLUMISE_TIER", "lite"]]));
  assert.equal(
    out,
    [
      "# upstream settings",
      "PLUMISE_PRIVATE_KEY=0xabc",
      "NUM_BLOCKS=4",
      "MODEL_NAME='org/m'",
      "PETALS_HOST=0.0.0.0",
      "PLUMISE_TIER=lite",
      "",
    ].join("\n"),
  );
  // what dotenv read before is what both read now
  assert.deepEqual(parseEnvFile(out).get("NUM_BLOCKS"), "4");
  assert.deepEqual(parseEnvFile(out).get("PLUMISE_PRIVATE_KEY"), "0xabc");
});

Deno.test("env file: a # inside a bare value (read differently by dotenv and systemd) is refused, not cut", () => {
  assert.throws(
    () => mergeEnvFile("API_SECRET=abc#def\n", new Map([["PLUMISE_TIER", "lite"]])),
    (e: unknown) => e instanceof ConfigError && e.code === "SERVICE_ENV_VALUE" && /quote it/.test(e.hint),
  );
  // a value that starts with # (dotenv: empty; systemd: the text) too
  for (const line of ["A=#abc\n", "A= #x\n"]) {
    assert.throws(() => mergeEnvFile(line, new Map()), (e: unknown) => e instanceof ConfigError, line);
  }
  assert.equal(mergeEnvFile("A=`abc#d`\n", new Map()), "A=`abc#d`\n", "a quoted value stays");
  // quoted, or a comment after a space, is fine
  assert.equal(mergeEnvFile("API_SECRET='abc#def'\n", new Map()), "API_SECRET='abc#def'\n");
  assert.equal(mergeEnvFile("NUM_BLOCKS=4 # four\n", new Map()), "NUM_BLOCKS=4\n");
});
