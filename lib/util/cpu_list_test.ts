import assert from "node:assert/strict";
import { formatCpuList, MAX_CPU, parseCpuList } from "./cpu_list.ts";

Deno.test("parseCpuList: numbers and ranges in the order written", () => {
  assert.deepEqual(parseCpuList("0"), [0]);
  assert.deepEqual(parseCpuList("0,1"), [0, 1]);
  assert.deepEqual(parseCpuList("4-7"), [4, 5, 6, 7]);
  assert.deepEqual(parseCpuList(" 3 , 0-1 "), [3, 0, 1]);
  assert.deepEqual(parseCpuList(`${MAX_CPU}`), [MAX_CPU]);
});

Deno.test("parseCpuList: anything else is refused, naming the list and the bad part", () => {
  const cases: [string, RegExp][] = [
    ["", /"" is not a CPU number or range/],
    ["0,,1", /"" is not a CPU number or range/],
    ["a", /"a" is not a CPU number or range/],
    ["-1", /"-1" is not a CPU number or range/],
    ["1.5", /"1.5" is not a CPU number or range/],
    ["3-1", /range 3-1 runs backwards/],
    [`0-${MAX_CPU + 1}`, new RegExp(`CPU ${MAX_CPU + 1} is beyond ${MAX_CPU}`)],
    ["0,1,0", /CPU 0 is named twice/],
    ["0-2,1", /CPU 1 is named twice/],
  ];
  for (const [s, want] of cases) {
    assert.throws(() => parseCpuList(s), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, want, s);
      assert.ok(e.message.includes(`CPU list ${JSON.stringify(s)}`), e.message);
      assert.match(e.message, /expected e\.g\./);
      return true;
    });
  }
});

Deno.test("formatCpuList: runs of three or more as ranges, and it parses back", () => {
  assert.equal(formatCpuList([]), "");
  assert.equal(formatCpuList([0]), "0");
  assert.equal(formatCpuList([0, 1]), "0,1");
  assert.equal(formatCpuList([0, 1, 2, 5]), "0-2,5");
  assert.equal(formatCpuList([3, 0, 1, 2]), "3,0-2");
  for (const cpus of [[0, 1, 2, 5], [7, 8, 9, 10, 2], [1, 3, 5]]) {
    assert.deepEqual(parseCpuList(formatCpuList(cpus)), cpus);
  }
});
