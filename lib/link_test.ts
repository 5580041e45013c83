import assert from "node:assert/strict";
import { join } from "node:path";
import { checkLink, ensureLink, inspectLink } from "./link.ts";

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
      /symlink to somewhere else.*\/elsewhere\/auth.json/,
    );
    assert.equal(Deno.readLinkSync(link), "/elsewhere/auth.json");
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
