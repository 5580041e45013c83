/**
 * A lower bound for a warm start, for `scripts/bench`: the floor of
 * `scripts/bench_floor.ts` plus one call of each Deno API a warm start of
 * secure-codex makes, with none of its checks or messages. It reads the
 * environment and session.json, looks at the link, the RAM directory and the
 * store, and hashes the store. It takes the session lock, then holds the users
 * lock, watches the RAM directory and the codex home and listens for the
 * forwarded signals while it runs `codex` with the given arguments. What
 * secure-codex costs beyond this is the time to load and run its own code.
 *
 * It expects the session the bench unlocked: `CODEX_HOME/auth.json` is a link
 * into the RAM directory.
 *
 * @module
 */

const env = Deno.env.toObject();
const codexHome = env.CODEX_HOME;
const ramCopy = Deno.readLinkSync(`${codexHome}/auth.json`);
const ramDir = ramCopy.slice(0, ramCopy.lastIndexOf("/"));
Deno.lstatSync(`${codexHome}/auth.json`);
Deno.lstatSync(ramDir);
JSON.parse(Deno.readTextFileSync(`${ramDir}/session.json`));
const store = Deno.readFileSync(`${codexHome}/auth.json.age`);
await crypto.subtle.digest("SHA-256", store);
const lockOptions = { read: true, write: true, create: true } as const;
const sessionLock = Deno.openSync(`${ramDir}/session.lock`, lockOptions);
sessionLock.lockSync(true);
Deno.statSync(ramCopy);
const usersLock = Deno.openSync(`${ramDir}/users.lock`, lockOptions);
usersLock.lockSync(false);
sessionLock.close();
const watcher = Deno.watchFs([ramDir, codexHome], { recursive: false });
const watching = (async () => {
  for await (const _event of watcher) {
    // A warm start compares fingerprints here. The floor only drains events.
  }
})();
const signals = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGALRM",
] as const;
const ignore = () => {};
for (const signal of signals) Deno.addSignalListener(signal, ignore);
const status = await new Deno.Command("codex", {
  args: Deno.args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
  clearEnv: true,
  env,
}).spawn().status;
watcher.close();
await watching;
Deno.statSync(ramCopy);
usersLock.close();
Deno.exit(status.code);
