import assert from "node:assert/strict";
import { ERROR_CODES, type ErrorCode, isErrorCode } from "./error_codes.ts";
import { ConfigError, type PlumiseError, SwarmError } from "./errors.ts";

/** The codes of the first release: stable API, so each must stay in the registry. */
const RELEASED =
  `AGENT_REGISTRY_INVALID API_LISTEN_FAILED API_OPTIONS API_PORT_IN_USE BAD_CHECKPOINT BAD_FRAME BAD_INPUT BAD_MEASUREMENT BAD_PINNING BAD_REPLY BAD_ROUTE_RANGE BAD_SESSION BAD_SHAPE BAD_SPAN BLOCK_INDICES_INVALID BODY_TOO_LARGE BYTES32_TOO_LONG CACHE_FULL CACHE_TOO_SMALL CHAIN_BAD_RESPONSE CHAIN_BAD_URL CHAIN_CLOSED CHAIN_ID_MISMATCH CHAIN_METHOD_NOT_FOUND CHAIN_REVERT CHAIN_RPC_ERROR CHAIN_TIMEOUT CHAIN_UNREACHABLE CHAT_TEMPLATE_INVALID CHAT_TEMPLATE_REJECTED CLIENT_CLOSED CLIENT_STOPPED CLI_FLAG_INVALID CONFIG_INVALID CONVERSATION_MISMATCH DIRECT_FAILED DIRECT_LISTEN_FAILED DIRECT_PORT_IN_USE EMPTY_PROMPT ENGINE_FAILED ENV_FILE_MISSING ENV_FILE_UNREADABLE FORWARD_FAILED GENERATION_REUSED HUB_CORRUPT HUB_HTTP_ERROR HUB_INTERRUPTED HUB_NOT_FOUND HUB_TIMEOUT HUB_UNAUTHORIZED HUB_UNREACHABLE IDENTITY_INVALID IDENTITY_UNREADABLE IDENTITY_UNWRITABLE INTERNAL INTERRUPTED INVALID_JSON INVALID_PARAMETER INVALID_PRIVATE_KEY KEYSTORE_BAD_PASSWORD KEYSTORE_EXISTS KEYSTORE_INVALID KEYSTORE_PASSWORD_EMPTY KEYSTORE_PASSWORD_MISMATCH KEYSTORE_PASSWORD_MISSING KEYSTORE_UNREADABLE KEYSTORE_UNWRITABLE LIBP2P_CREATE_FAILED LINK_REFUSED LOADING MAX_NEW_TOKENS_INVALID METHOD_NOT_ALLOWED MISSING_BLOCKS MISSING_PRIVATE_KEY MODEL_HASH_INVALID MODEL_ID_EMPTY MODEL_NOT_FOUND MOVE_NOT_SERVED NODE_STATE NOT_FOUND NOT_PREPARED NOT_RUNNING NOT_STARTED NO_DIRECT NO_INITIAL_PEERS NO_LINK NO_PEERS NO_PEER_ANSWERED NO_RUNTIME NO_SPAN ORACLE_BAD_REPLY ORACLE_REFUSED ORACLE_TIMEOUT ORACLE_UNREACHABLE ORACLE_URL_INVALID ORACLE_VIEW_UNAVAILABLE PREFILL_CHUNK_INVALID PROMPT_TOO_LONG PROOF_INVALID PUBLIC_URL_INVALID RECEIPT_TIMEOUT RECORD_BAD_SIGNATURE RECORD_EXPIRED RECORD_INVALID RECORD_PEER_MISMATCH REPORT_INTERVAL_INVALID REPORT_INVALID REWARD_POOL_INVALID SAMPLING_INVALID SESSION_BROKEN SESSION_CLOSED SESSION_FAILED SESSION_LIMIT SHUTTING_DOWN SPAN_NOT_SERVED STEP_IN_PROGRESS STOPPED STOP_STRING_INVALID STREAM_CLOSED TIMEOUT TOO_LARGE TOO_LONG TOO_MANY_REQUESTS TX_REVERTED TX_WOULD_REVERT UNAUTHORIZED UNKNOWN_SESSION UNSUPPORTED_MODEL WALLET_MISSING WRONG_MODEL `
    .trim().split(/\s+/);

Deno.test("error codes: every released code stays in the registry, each with its meaning", () => {
  const missing = RELEASED.filter((c) => !isErrorCode(c));
  assert.deepEqual(missing, [], "a released code was renamed or removed");
  for (const [code, meaning] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, code);
    assert.ok(meaning.length >= 10 && !meaning.endsWith("."), `${code}: ${meaning}`);
  }
});

Deno.test("error codes: isErrorCode knows the registry and nothing else", () => {
  assert.ok(isErrorCode("CACHE_FULL"));
  assert.ok(isErrorCode("REMOTE_ERROR"));
  for (
    const v of ["cache_full", "CACHE_FUL", "", "toString", "constructor", "__proto__", 42, undefined, null]
  ) {
    assert.ok(!isErrorCode(v), String(v));
  }
});

Deno.test("error codes: a misspelt code is a type error, in a constructor and in a comparison", () => {
  // @ts-expect-error: not a registered code (deno test type-checks this file, so this line fails the
  // run if the constructor ever accepts any string again)
  const e = new ConfigError("CONFIG_INVALD", "x");
  assert.equal(e.exitCode, 2);
  const s: PlumiseError = new SwarmError("NO_PEERS", "none");
  // @ts-expect-error: the types "NO_PEERS" | … and "NO_PEER" have no overlap
  assert.ok(s.code !== "NO_PEER");
  const code: ErrorCode = s.code;
  assert.equal(ERROR_CODES[code], ERROR_CODES.NO_PEERS);
});

Deno.test("error codes: each code of the registry is raised somewhere in lib/", async () => {
  const root = new URL("./", import.meta.url).pathname;
  let source = "";
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}${e.name}`;
      if (e.isDirectory && e.name !== "testing") await walk(`${p}/`);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") && e.name !== "error_codes.ts") {
        source += await Deno.readTextFile(p);
      }
    }
  };
  await walk(root);
  const unused = Object.keys(ERROR_CODES).filter((c) => !source.includes(`"${c}"`));
  assert.deepEqual(unused, [], "a code nobody raises: remove it or raise it");
});
