import assert from "node:assert/strict";
import * as posix from "node:path/posix";
import {
  basename,
  dirname,
  isAbsolute,
  join,
  normalize,
  resolve,
} from "./path.ts";

const SAMPLES = [
  "",
  ".",
  "..",
  "/",
  "//",
  "a",
  "a/",
  "/a",
  "/a/",
  "/a//b",
  "/a/./b",
  "/a/../b",
  "/../a",
  "a/../..",
  "../a/b",
  "/home/me/.codex/auth.json",
  "~/key.txt",
  "/a/b/c/../../d/./e/",
];

Deno.test("path helpers match node:path/posix", () => {
  for (const path of SAMPLES) {
    if (path !== "") {
      assert.equal(
        normalize(path).replace(/\/$/, "") || "/",
        posix.normalize(path).replace(/(.)\/$/, "$1"),
        `normalize ${path}`,
      );
      assert.equal(dirname(path), posix.dirname(path), `dirname ${path}`);
      assert.equal(basename(path), posix.basename(path), `basename ${path}`);
    }
    assert.equal(
      isAbsolute(path),
      posix.isAbsolute(path),
      `isAbsolute ${path}`,
    );
    assert.equal(resolve(path), posix.resolve(path), `resolve ${path}`);
    assert.equal(
      resolve("/base/dir", path),
      posix.resolve("/base/dir", path),
      `resolve base ${path}`,
    );
    assert.equal(
      join("/x", path),
      posix.join("/x", path).replace(/(.)\/$/, "$1"),
      `join ${path}`,
    );
  }
});
