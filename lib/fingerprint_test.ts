import assert from "node:assert/strict";
import { fingerprintOf, sha256Hex } from "./fingerprint.ts";

Deno.test("sha256Hex of the empty input", async () => {
  assert.equal(
    await sha256Hex(new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("fingerprintOf changes when a file is replaced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/auth.json`;
    await Deno.writeTextFile(path, "one");
    const first = fingerprintOf(await Deno.lstat(path));
    assert.equal(fingerprintOf(await Deno.lstat(path)), first);
    // Same size, new inode: what a rename over the file does.
    await Deno.writeTextFile(`${dir}/next`, "two");
    await Deno.rename(`${dir}/next`, path);
    assert.notEqual(fingerprintOf(await Deno.lstat(path)), first);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
