import assert from "node:assert/strict";
import { pageRelease } from "./_page_release.ts";

const residentMb = () => {
  const pages = Number(Deno.readTextFileSync("/proc/self/statm").split(" ")[1]);
  return (pages * 4096) / 2 ** 20;
};

Deno.test({
  name:
    "pageRelease: the pages inside a view go back to the kernel and read as zeros; its neighbours keep theirs",
  ignore: Deno.build.os !== "linux",
  fn: () => {
    const release = pageRelease();
    assert.ok(release, "libc's madvise is reachable on Linux");
    const a = new Float32Array(48 * 2 ** 20 / 4);
    a.fill(1.5);
    const before = residentMb();
    const third = a.length / 3;
    release(a.subarray(third, 2 * third));
    const after = residentMb();
    assert.ok(before - after > 12, `resident ${before.toFixed(1)} → ${after.toFixed(1)} MB`);
    assert.equal(a[third - 1], 1.5, "the view's left neighbour");
    assert.equal(a[2 * third], 1.5, "the view's right neighbour");
    // whole pages inside the view read as zeros; a view's partial end pages are left as they were
    assert.equal(a[third + 4096], 0);
    assert.equal(a[2 * third - 4096], 0);
    release(a.subarray(0, 10)); // less than a page: nothing to release
    assert.equal(a[0], 1.5);
    a.fill(2); // written again, it is memory again
    assert.equal(a[third + 4096], 2);
    assert.equal(pageRelease(), release, "one per process");
  },
});
