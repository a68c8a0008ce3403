import assert from "node:assert/strict";
import { unknownSettingWarnings } from "./unknown_settings.ts";

Deno.test("unknownSettingWarnings: a misspelt plumise setting is named with the one it likely meant", () => {
  assert.deepEqual(
    unknownSettingWarnings({ PLUMISE_TEIR: "pro", PATH: "/bin", HOME: "/root", PLUMISE_TIER: "lite" }, {
      API_PROT: "9999",
      MODEL_NAME: "m",
      CUDA_VISIBLE_DEVICES: "0",
      PLUMISE_NOPE: "1",
    }),
    [
      "PLUMISE_TEIR in the environment is not a plumise setting and is ignored: did you mean PLUMISE_TIER?",
      "API_PROT in .env is not a plumise setting and is ignored: did you mean API_PORT?",
      "PLUMISE_NOPE in .env is not a plumise setting and is ignored",
    ],
  );
  // the installer's own names, and other programs' in the environment, pass in silence
  assert.deepEqual(unknownSettingWarnings({ PLUMISE_INSTALL_DIR: "/opt", API_PROT: "1" }, {}), []);
});
