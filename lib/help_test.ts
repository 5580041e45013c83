import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { HELP_TEXT, VERSION } from "./help.ts";

Deno.test("VERSION matches deno.json", () => {
  assert.equal(VERSION, config.version);
});

Deno.test("HELP_TEXT names every mode flag", () => {
  for (
    const flag of [
      "--unlock",
      "--lock",
      "--cleanup",
      "--watch",
      "--import",
      "--rekey",
      "--status",
      "--completions",
      "--list-profiles",
      "--version",
    ]
  ) {
    assert.match(HELP_TEXT, new RegExp(`(^\\s+|, )${flag}\\b`, "m"), flag);
  }
});
