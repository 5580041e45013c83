import assert from "node:assert/strict";
import { join } from "node:path";
import type { CliError } from "./output.ts";
import {
  chooseRamDir,
  ensureRamDir,
  sessionId,
  VERIFIED_MARKER,
} from "./ram_dir.ts";

const uid = Deno.uid()!;

/** Mounts a tmpfs for one test; needs root or a user namespace (scripts/test). */
async function withTmpfs(
  action: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "mode=0700", "tmpfs", dir],
    stderr: "piped",
  }).output();
  assert.equal(mount.code, 0, new TextDecoder().decode(mount.stderr));
  try {
    await action(dir);
  } finally {
    await new Deno.Command("umount", { args: ["-l", dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sessionId is stable and short", async () => {
  const a = await sessionId("/home/me/.codex");
  assert.equal(a, await sessionId("/home/me/.codex"));
  assert.notEqual(a, await sessionId("/home/you/.codex"));
  assert.match(a, /^[0-9a-f]{16}$/);
});

Deno.test("chooseRamDir prefers the option", () => {
  const choice = chooseRamDir({
    ramDir: "/mnt/ram",
    xdgRuntimeDir: "/run/user/1",
    uid: 1,
    id: "ab",
  });
  assert.deepEqual(choice, { path: "/mnt/ram", source: "--ram-dir" });
  const xdg = chooseRamDir({ xdgRuntimeDir: "/run/user/1", uid: 1, id: "ab" });
  assert.deepEqual(xdg, {
    path: "/run/user/1/secure-codex/ab",
    source: "XDG_RUNTIME_DIR",
  });
});

Deno.test("chooseRamDir resolves a symlinked XDG_RUNTIME_DIR", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const real = join(dir, "real");
    Deno.mkdirSync(real);
    Deno.symlinkSync(real, join(dir, "link"));
    const choice = chooseRamDir({
      xdgRuntimeDir: join(dir, "link"),
      uid: 1,
      id: "ab",
    });
    assert.equal(
      choice.path,
      join(Deno.realPathSync(real), "secure-codex", "ab"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chooseRamDir rejects a relative XDG_RUNTIME_DIR", () => {
  assert.throws(
    () => chooseRamDir({ xdgRuntimeDir: "run", uid: 1, id: "ab" }),
    (error: Error & { hints?: string[] }) =>
      error.message === "XDG_RUNTIME_DIR is not an absolute path: run" &&
      (error.hints ?? [])[0] ===
        "set it to your runtime directory, usually /run/user/1, or unset it",
  );
});

Deno.test("chooseRamDir without a runtime directory explains the fixes", () => {
  assert.throws(
    () => chooseRamDir({ uid: 987654, id: "ab" }),
    (error: Error & { hints?: string[] }) =>
      /no RAM directory/.test(error.message) &&
      (error.hints ?? []).some((hint) => /enable-linger/.test(hint)),
  );
});

Deno.test("ensureRamDir creates private directories on tmpfs", async () => {
  await withTmpfs(async (runtime) => {
    const choice = chooseRamDir({
      xdgRuntimeDir: runtime,
      uid,
      id: "0123456789abcdef",
    });
    await ensureRamDir(choice, uid);
    for (const path of [join(runtime, "secure-codex"), choice.path]) {
      const info = Deno.lstatSync(path);
      assert.ok(info.isDirectory, path);
      assert.equal(info.mode! & 0o7777, 0o700, path);
    }
    await ensureRamDir(choice, uid);
  });
});

Deno.test("ensureRamDir rejects unsafe directories", async () => {
  await withTmpfs(async (runtime) => {
    const wide = join(runtime, "wide");
    Deno.mkdirSync(wide);
    Deno.chmodSync(wide, 0o755);
    await assert.rejects(
      () => ensureRamDir({ path: wide, source: "--ram-dir" }, uid),
      /mode 0755, expected 0700/,
    );
    assert.equal(Deno.lstatSync(wide).mode! & 0o777, 0o755);

    const target = join(runtime, "target");
    Deno.mkdirSync(target, { mode: 0o700 });
    const link = join(runtime, "link");
    Deno.symlinkSync(target, link);
    await assert.rejects(
      () => ensureRamDir({ path: link, source: "--ram-dir" }, uid),
      /RAM directory is a symlink/,
    );

    const file = join(runtime, "file");
    Deno.writeTextFileSync(file, "");
    await assert.rejects(
      () => ensureRamDir({ path: file, source: "--ram-dir" }, uid),
      /not a directory/,
    );

    // Another owner needs a second mapped uid: real root has one, a user
    // namespace from `unshare -Urm` maps only uid 0, so there the check is skipped.
    const foreign = join(runtime, "foreign");
    Deno.mkdirSync(foreign, { mode: 0o700 });
    let chowned = true;
    try {
      Deno.chownSync(foreign, 4242, 4242);
    } catch {
      chowned = false;
      console.log(
        "skipped the foreign-owner check: uid 4242 is not mapped here",
      );
    }
    if (chowned) {
      await assert.rejects(
        () => ensureRamDir({ path: foreign, source: "--ram-dir" }, uid),
        /owned by uid 4242/,
      );
    }
  });
});

Deno.test("ensureRamDir rejects a disk filesystem without creating", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.chmodSync(dir, 0o700);
    const path = join(dir, "ram");
    await assert.rejects(
      () => ensureRamDir({ path, source: "--ram-dir" }, uid),
      /not on tmpfs or ramfs/,
    );
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureRamDir rejects /dev paths with the reason", async () => {
  await assert.rejects(
    () =>
      ensureRamDir(
        { path: "/dev/shm/secure-codex", source: "--ram-dir" },
        uid,
      ),
    (error: Error & { hints?: string[] }) =>
      /under \/dev is not supported/.test(error.message) &&
      (error.hints ?? []).some((hint) => /--allow-all/.test(hint)),
  );
});

Deno.test("ensureRamDir rejects a parent writable by others", async () => {
  await withTmpfs(async (runtime) => {
    const parent = join(runtime, "shared");
    Deno.mkdirSync(parent);
    Deno.chmodSync(parent, 0o777);
    await assert.rejects(
      () =>
        ensureRamDir(
          { path: join(parent, "ram"), source: "--ram-dir" },
          uid,
        ),
      /parent of the RAM directory is not safe/,
    );
    Deno.chmodSync(parent, 0o1777);
    await ensureRamDir({ path: join(parent, "ram"), source: "--ram-dir" }, uid);
  });
});

Deno.test("ensureRamDir ignores a record for another directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.chmodSync(dir, 0o700);
    const path = join(dir, "ram");
    Deno.mkdirSync(path, { mode: 0o700 });
    Deno.writeTextFileSync(join(path, VERIFIED_MARKER), "1:1");
    await assert.rejects(
      () => ensureRamDir({ path, source: "--ram-dir" }, uid),
      /not on tmpfs or ramfs/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureRamDir fast path still checks the mode", async () => {
  await withTmpfs(async (runtime) => {
    const choice = chooseRamDir({
      xdgRuntimeDir: runtime,
      uid,
      id: "0123456789abcdef",
    });
    await ensureRamDir(choice, uid);
    Deno.chmodSync(choice.path, 0o755);
    let rejection: CliError | null = null;
    try {
      await ensureRamDir(choice, uid);
    } catch (caught) {
      rejection = caught as CliError;
    }
    assert.match(rejection?.message ?? "", /mode 0755, expected 0700/);
    // chmod fixes it; login sessions and other tmpfs mounts do not apply.
    assert.deepEqual(rejection?.hints, [
      `if you created it yourself: chmod 700 ${choice.path}`,
    ]);
  });
});
