/**
 * The start-up floor for `scripts/bench`: the least a Deno wrapper can do.
 * It runs `codex` with the given arguments, inherited stdio and a cleared
 * environment passed back in, waits for it and exits with its code. The bench
 * runs it with the flags `scripts/secure-codex` uses, so the difference
 * between this and secure-codex is what secure-codex itself costs.
 *
 * @module
 */

const status = await new Deno.Command("codex", {
  args: Deno.args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
  clearEnv: true,
  env: Deno.env.toObject(),
}).spawn().status;
Deno.exit(status.code);
