/**
 * The start-up floor for `scripts/bench`: the least a Deno wrapper can do.
 * It runs `codex` with the given arguments, inherited stdio and a cleared
 * environment passed back in, waits for it and exits with its code. The bench
 * runs it with the flags `scripts/secure-codex` uses, so the difference
 * between this and secure-codex is what secure-codex itself costs. With
 * SECURE_CODEX_TRACE set it records two phases, as lib/trace.ts does.
 *
 * @module
 */

const loaded = performance.now();
const env = Deno.env.toObject();
const status = await new Deno.Command("codex", {
  args: Deno.args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
  clearEnv: true,
  env,
}).spawn().status;
// Set only for the bench's phase runs, in the format of lib/trace.ts.
if (env.SECURE_CODEX_TRACE) {
  Deno.writeTextFileSync(
    env.SECURE_CODEX_TRACE,
    JSON.stringify([["loaded", loaded], ["codex", performance.now()]]) + "\n",
    { append: true },
  );
}
Deno.exit(status.code);
