import assert from "node:assert/strict";
import { CliError, formatError } from "./output.ts";

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
