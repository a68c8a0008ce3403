import assert from "node:assert/strict";
import { ConfigError, redact } from "../errors.ts";
import { createKeystore, loadWallet, parsePrivateKey, walletFromKeystore } from "./wallet.ts";

Deno.test("parsePrivateKey adds 0x, validates, never echoes the key", () => {
  const key = "ab".repeat(32);
  assert.equal(parsePrivateKey(key), "0x" + key);
  assert.equal(redact(`key ${key}`), "key [redacted]");
  for (const bad of ["0x1234", "zz" + "a".repeat(62), "0x" + "0".repeat(64)]) {
    assert.throws(() => parsePrivateKey(bad), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, "INVALID_PRIVATE_KEY");
      assert.ok(!err.message.includes(bad.replace(/^0x/, "")), err.message);
      return true;
    });
  }
});

Deno.test("keystore round trip (mode 0600, no overwrite, wrong password)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/k.json`;
    const { address } = await createKeystore(path, "pw-123456", { scryptN: 1024 });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await walletFromKeystore(path, "pw-123456")).address, address);
    await assert.rejects(walletFromKeystore(path, "wrong-pw"), /wrong password/);
    await assert.rejects(createKeystore(path, "pw-123456", { scryptN: 1024 }), /already exists/);
    await assert.rejects(loadWallet({ keystore: path }), /no password for keystore/);
    assert.equal(
      (await loadWallet({ keystore: path, promptPassword: () => Promise.resolve("pw-123456") })).address,
      address,
    );
    await assert.rejects(loadWallet({}), /neither PLUMISE_PRIVATE_KEY nor --keystore/);
    // spaces around the password are part of it; a keystore made when they were trimmed opens too
    const spaced = `${dir}/s.json`;
    const s = await createKeystore(spaced, "  pw-spaced  ", { scryptN: 1024 });
    assert.equal((await walletFromKeystore(spaced, "  pw-spaced  ")).address, s.address);
    await assert.rejects(walletFromKeystore(spaced, "pw-spaced"), /wrong password/);
    assert.equal((await walletFromKeystore(path, "  pw-123456 ")).address, address, "made trimmed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore: a device, a pipe or a huge file is refused unread (no hang, no unbounded read)", async () => {
  for (const path of ["/dev/zero", "/dev/null"]) {
    await assert.rejects(
      walletFromKeystore(path, "pw"),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "KEYSTORE_INVALID" && /not a regular file/.test(e.message),
      path,
    );
  }
  const dir = await Deno.makeTempDir();
  try {
    // a pipe nobody writes to: refused at once (it hung past the first SIGTERM)
    const mk = await new Deno.Command("mkfifo", { args: [`${dir}/ks.fifo`] }).output().catch(() => undefined);
    if (mk?.success) {
      await assert.rejects(walletFromKeystore(`${dir}/ks.fifo`, "pw"), /not a regular file/);
    }
    await Deno.writeFile(`${dir}/big.json`, new Uint8Array(2_000_000));
    await assert.rejects(walletFromKeystore(`${dir}/big.json`, "pw"), /is 2000000 bytes, not a keystore/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
