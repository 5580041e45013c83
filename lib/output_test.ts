import assert from "node:assert/strict";
import { CliError, formatError, shellQuote } from "./output.ts";

Deno.test("formatError puts each hint on its own line", () => {
  const error = new CliError("store not found: /x", {
    hints: ["first", "second"],
  });
  assert.deepEqual(formatError(error), [
    "store not found: /x",
    "hint: first",
    "hint: second",
  ]);
  assert.equal(error.exitCode, 1);
});

Deno.test("CliError carries the usage exit code", () => {
  assert.equal(new CliError("x", { exitCode: 2 }).exitCode, 2);
});

Deno.test("shellQuote quotes only words that need it", () => {
  assert.equal(
    shellQuote("/home/me/.codex/auth.json"),
    "/home/me/.codex/auth.json",
  );
  assert.equal(shellQuote("/home/me/my codex"), "'/home/me/my codex'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote("$(rm -rf ~)"), "'$(rm -rf ~)'");
});
