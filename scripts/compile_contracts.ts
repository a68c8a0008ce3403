/**
 * Compiles the Solidity test contracts in contracts/test/ with solc-js and writes their ABI and
 * runtime bytecode to contracts/test/artifacts.json (committed, so tests need no compiler).
 *
 *   deno run --allow-read --allow-write --allow-env scripts/compile_contracts.ts [--check]
 *
 * With `--check` it compiles and fails when the committed artifacts differ.
 * @module
 */
import solc from "solc";

const dir = new URL("../contracts/test/", import.meta.url);
const source = "PlumiseStandins.sol";
const outFile = new URL("artifacts.json", dir);

const input = {
  language: "Solidity",
  sources: { [source]: { content: Deno.readTextFileSync(new URL(source, dir)) } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.deployedBytecode.object"] } },
  },
};

interface SolcOutput {
  errors?: Array<{ severity: string; formattedMessage: string }>;
  contracts: Record<
    string,
    Record<string, { abi: unknown[]; evm: { deployedBytecode: { object: string } } }>
  >;
}

const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) Deno.exit(1);

const artifacts: Record<string, { abi: unknown[]; deployedBytecode: string }> = {};
for (const [name, c] of Object.entries(output.contracts[source]).sort(([a], [b]) => a.localeCompare(b))) {
  if (c.evm.deployedBytecode.object === "") continue; // interfaces
  artifacts[name] = { abi: c.abi, deployedBytecode: "0x" + c.evm.deployedBytecode.object };
}
const text = JSON.stringify({ compiler: `solc ${solc.version()}`, source, artifacts }, null, 2) + "\n";

if (Deno.args.includes("--check")) {
  const current = Deno.readTextFileSync(outFile);
  if (current !== text) {
    console.error("contracts/test/artifacts.json is stale: run scripts/compile_contracts.ts");
    Deno.exit(1);
  }
  console.log("artifacts up to date");
} else {
  Deno.writeTextFileSync(outFile, text);
  console.log(`wrote ${Object.keys(artifacts).join(", ")} to contracts/test/artifacts.json`);
}
