import assert from "node:assert/strict";

/**
 * Runs code that calls reportWriteBack in a child process, because the
 * function writes to stderr, and returns that stderr.
 */
async function reportsOf(body: string): Promise<string> {
  const session = new URL("./session.ts", import.meta.url).href;
  const script = `
    import { reportWriteBack, Session } from ${JSON.stringify(session)};
    const open = (home) => new Session({
      codexHome: home,
      store: home + "/auth.json.age",
      identities: [],
      ramDir: { path: home + "-ram", source: "default" },
      uid: 1000,
      ageEnv: {},
    });
    ${body}
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stderr);
}

Deno.test("reportWriteBack repeats nothing per session", async () => {
  const stderr = await reportsOf(`
    const work = open("/home/me/.codex-work");
    const personal = open("/home/me/.codex-personal");
    reportWriteBack(work, { status: "conflict" });
    reportWriteBack(work, { status: "conflict" });
    reportWriteBack(personal, { status: "conflict" });
    reportWriteBack(work, { status: "saved" });
    reportWriteBack(work, { status: "conflict" });
  `);
  const warnings = stderr.split("\n").filter((line) =>
    line.startsWith("secure-codex: warning: the store was changed")
  );
  assert.deepEqual(warnings, [
    "secure-codex: warning: the store was changed by another program since unlock: /home/me/.codex-work/auth.json.age",
    "secure-codex: warning: the store was changed by another program since unlock: /home/me/.codex-personal/auth.json.age",
    "secure-codex: warning: the store was changed by another program since unlock: /home/me/.codex-work/auth.json.age",
  ]);
});
