import assert from "node:assert/strict";
import { join } from "./path.ts";
import { CliError } from "./output.ts";
import {
  besideRecipientsPath,
  parseRecipients,
  readRecipientsFile,
  rememberRecipients,
  resolveRecipients,
} from "./recipients.ts";

const UID = Deno.uid()!;
const RECIPIENT_A =
  "age1jnqw89dvx357nvec6tspfe45e8vutufxt0v6g5cjp3quafza2yfqpfa5hm";
const RECIPIENT_B = "age1yubikey1qwerty";

Deno.test("parseRecipients skips comments and blank lines", () => {
  const text = `# team\n\n${RECIPIENT_A}\r\n  ${RECIPIENT_B}  \n` +
    "ssh-ed25519 AAAAC3Nz me@host\n" + `${RECIPIENT_A}\n`;
  assert.deepEqual(parseRecipients(text, "r.txt"), [
    RECIPIENT_A,
    RECIPIENT_B,
    "ssh-ed25519 AAAAC3Nz me@host",
  ]);
});

Deno.test("parseRecipients rejects an identity with its line number", () => {
  let error: unknown;
  try {
    parseRecipients(`${RECIPIENT_A}\nAGE-SECRET-KEY-1ABC\n`, "r.txt");
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof CliError);
  assert.match(error.message, /invalid recipient on line 2 .*: r\.txt/);
  // The rejected line may be a secret key, so it is never echoed.
  assert.ok(!error.message.includes("AGE-SECRET-KEY"));
  assert.ok(!error.hints.join(" ").includes("1ABC"));
});

Deno.test("readRecipientsFile rejects a file without recipients", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "empty.txt");
    await Deno.writeTextFile(path, "# nothing here\n");
    assert.throws(() => readRecipientsFile(path, UID), /lists no recipient/);
    assert.throws(
      () => readRecipientsFile(join(dir, "missing.txt"), UID),
      /recipients file not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rememberRecipients writes the file beside the store once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = join(dir, "auth.json.age");
    await rememberRecipients(store, [RECIPIENT_A], UID);
    const path = besideRecipientsPath(store);
    assert.deepEqual(readRecipientsFile(path, UID), [RECIPIENT_A]);
    const first = Deno.lstatSync(path);
    await rememberRecipients(store, [RECIPIENT_A], UID);
    assert.equal(Deno.lstatSync(path).ino, first.ino, "unchanged list");
    await rememberRecipients(store, [RECIPIENT_B], UID);
    assert.deepEqual(readRecipientsFile(path, UID), [RECIPIENT_B]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveRecipients prefers flag, then beside file, then identity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = join(dir, "auth.json.age");
    const flag = join(dir, "flag.txt");
    await Deno.writeTextFile(flag, `${RECIPIENT_B}\n`);
    const identityRecipients = ["age1fromidentity"];

    const none = resolveRecipients({ store, identityRecipients: [], uid: UID });
    assert.deepEqual(none, { source: "none", path: null, list: [] });

    const identity = resolveRecipients({ store, identityRecipients, uid: UID });
    assert.equal(identity.source, "identity");
    assert.deepEqual(identity.list, identityRecipients);

    await rememberRecipients(store, [RECIPIENT_A], UID);
    const beside = resolveRecipients({ store, identityRecipients, uid: UID });
    assert.equal(beside.source, "beside-store");
    assert.deepEqual(beside.list, [RECIPIENT_A]);

    const fromFlag = resolveRecipients({
      recipientsFile: flag,
      store,
      identityRecipients,
      uid: UID,
    });
    assert.equal(fromFlag.source, "--recipients-file");
    assert.equal(fromFlag.path, flag);
    assert.deepEqual(fromFlag.list, [RECIPIENT_B]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
