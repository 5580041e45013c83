import assert from "node:assert/strict";
import { join } from "node:path";
import { CliError } from "./output.ts";
import { checkLink, ensureLink, inspectLink, linkedRamDir } from "./link.ts";

async function withDir(action: (dir: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    action(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ensureLink creates the link once", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    const target = join(dir, "ram", "auth.json");
    assert.equal(inspectLink(link, target).kind, "missing");
    ensureLink(link, target, "store");
    assert.equal(Deno.readLinkSync(link), target);
    assert.equal(inspectLink(link, target).kind, "ours");
    ensureLink(link, target, "store");
  }));

Deno.test("checkLink accepts a relative link to the target", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    Deno.mkdirSync(join(dir, "ram"));
    Deno.symlinkSync("ram/auth.json", link);
    assert.equal(
      checkLink(link, join(dir, "ram", "auth.json"), "store").kind,
      "ours",
    );
  }));

Deno.test("checkLink rejects a plaintext file and keeps it", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    Deno.writeTextFileSync(link, "{}");
    assert.throws(
      () => ensureLink(link, join(dir, "t"), "store"),
      /plaintext auth.json found on disk/,
    );
    assert.equal(Deno.readTextFileSync(link), "{}");
  }));

Deno.test("checkLink rejects a link elsewhere and keeps it", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    Deno.symlinkSync("/elsewhere/auth.json", link);
    assert.throws(
      () => ensureLink(link, join(dir, "t"), "store"),
      /symlink to a file that does not exist.*\/elsewhere\/auth.json/,
    );
    assert.equal(Deno.readLinkSync(link), "/elsewhere/auth.json");

    const other = join(dir, "other.json");
    Deno.writeTextFileSync(other, "{}");
    Deno.removeSync(link);
    Deno.symlinkSync(other, link);
    assert.throws(
      () => ensureLink(link, join(dir, "t"), "store"),
      /symlink to somewhere else/,
    );
    assert.equal(Deno.readTextFileSync(other), "{}");
  }));

Deno.test("checkLink rejects a directory", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    Deno.mkdirSync(link);
    assert.throws(
      () => checkLink(link, join(dir, "t"), "store"),
      /neither a file nor a symlink/,
    );
  }));

Deno.test("linkedRamDir names only another session's RAM directory", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    const other = join(dir, "other");
    Deno.mkdirSync(other);
    Deno.symlinkSync("other/auth.json", link);
    const state = inspectLink(link, join(dir, "ram", "auth.json"));
    // Without a session.lock the directory is not a RAM directory.
    assert.equal(linkedRamDir(link, state), null);
    Deno.writeTextFileSync(join(other, "session.lock"), "");
    assert.equal(linkedRamDir(link, state), other);
    assert.equal(
      linkedRamDir(link, inspectLink(link, join(other, "auth.json"))),
      null,
    );
    Deno.removeSync(link);
    Deno.symlinkSync("other/tokens.json", link);
    assert.equal(
      linkedRamDir(link, inspectLink(link, join(dir, "ram", "auth.json"))),
      null,
    );
  }));

Deno.test("checkLink names the other session a link leads into", () =>
  withDir((dir) => {
    const link = join(dir, "auth.json");
    const other = join(dir, "other");
    Deno.mkdirSync(other);
    Deno.writeTextFileSync(join(other, "session.lock"), "");
    Deno.symlinkSync(join(other, "auth.json"), link);
    const check = (): CliError => {
      try {
        checkLink(
          link,
          join(dir, "ram", "auth.json"),
          "store",
          (action, ramDir) => `secure-codex --ram-dir ${ramDir} ${action}`,
        );
      } catch (error) {
        if (error instanceof CliError) return error;
        throw error;
      }
      assert.fail("checkLink accepted the link");
    };
    // Neither a RAM copy nor a session state: that session has ended.
    const ended = check();
    assert.equal(
      ended.message,
      `auth.json links into the RAM directory of an ended session: ${link} -> ${other}/auth.json`,
    );
    assert.deepEqual(ended.hints, [
      `to use that RAM directory again, pass --ram-dir ${other}`,
      `or, since it contains no RAM copy, remove the link: rm ${link}`,
    ]);

    Deno.writeTextFileSync(join(other, "auth.json"), "{}");
    const error = check();
    assert.equal(
      error.message,
      `auth.json links into the RAM directory of another session: ${link} -> ${other}/auth.json`,
    );
    assert.deepEqual(error.hints, [
      `to use that session, pass --ram-dir ${other}`,
      `to save and end it: secure-codex --ram-dir ${other} --cleanup`,
    ]);
    assert.equal(Deno.readLinkSync(link), join(other, "auth.json"));
  }));
