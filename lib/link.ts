/**
 * The `auth.json` link: `<codex home>/auth.json` is a symlink to the RAM copy,
 * so codex reads and writes its tokens in RAM while every other file stays in
 * its real home. codex 0.171 resolves the link before it saves, writing its
 * temp file and rename next to the target.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "./path.ts";
import { CliError, shellQuote } from "./output.ts";
import { lstatOrNull } from "./ram_dir.ts";

/** The kind of entry found at the link's path. */
export type LinkState =
  | { kind: "missing" }
  | { kind: "ours" }
  | { kind: "elsewhere"; target: string }
  | { kind: "file" }
  | { kind: "other" };

/**
 * Inspects `<codex home>/auth.json` without following it.
 *
 * @example
 * ```ts
 * const state = inspectLink("/home/me/.codex/auth.json", "/run/user/1000/secure-codex/0123456789abcdef/auth.json");
 * console.log(state.kind);
 * ```
 */
export function inspectLink(linkPath: string, target: string): LinkState {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(linkPath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { kind: "missing" };
    throw error;
  }
  if (info.isSymlink) {
    const pointsTo = Deno.readLinkSync(linkPath);
    if (resolve(dirname(linkPath), pointsTo) === target) {
      return { kind: "ours" };
    }
    return { kind: "elsewhere", target: pointsTo };
  }
  if (info.isFile) return { kind: "file" };
  return { kind: "other" };
}

/**
 * Names the RAM directory of another secure-codex session when the link
 * points at that session's RAM copy: a target named `auth.json` whose
 * directory contains a `session.lock`, as every RAM directory does from its
 * first unlock until it is removed. Any other target gives null. A session
 * unlocked with `--ram-dir` leaves such a link for runs without it.
 *
 * @example
 * ```ts
 * const linkPath = "/home/me/.codex/auth.json";
 * const ramDir = linkedRamDir(linkPath, inspectLink(linkPath, "/run/user/1000/secure-codex/0123456789abcdef/auth.json"));
 * if (ramDir !== null) console.log(`add --ram-dir ${ramDir}`);
 * ```
 */
export function linkedRamDir(
  linkPath: string,
  state: LinkState,
): string | null {
  if (state.kind !== "elsewhere") return null;
  const target = resolve(dirname(linkPath), state.target);
  if (basename(target) !== "auth.json") return null;
  const ramDir = dirname(target);
  try {
    return lstatOrNull(join(ramDir, "session.lock"))?.isFile ? ramDir : null;
  } catch (error) {
    // A directory this user cannot search contains none of its sessions.
    if (error instanceof Deno.errors.PermissionDenied) return null;
    throw error;
  }
}

/**
 * Names the RAM directory of an ended session when the link points into
 * one: {@linkcode linkedRamDir}, holding neither a RAM copy nor a session
 * state, as a cleanup leaves it. Nothing is stored behind such a link.
 *
 * @example
 * ```ts
 * const linkPath = "/home/me/.codex/auth.json";
 * const state = inspectLink(linkPath, "/run/user/1000/secure-codex/0123456789abcdef/auth.json");
 * console.log(endedSessionRamDir(linkPath, state));
 * ```
 */
export function endedSessionRamDir(
  linkPath: string,
  state: LinkState,
): string | null {
  const ramDir = linkedRamDir(linkPath, state);
  if (ramDir === null) return null;
  const ended = lstatOrNull(join(ramDir, "auth.json")) === null &&
    lstatOrNull(join(ramDir, "session.json")) === null;
  return ended ? ramDir : null;
}

/**
 * Throws a {@linkcode CliError} unless the link is missing or already ours.
 * A regular file or a foreign link is never overwritten.
 *
 * @example
 * ```ts
 * checkLink("/home/me/.codex/auth.json", "/run/user/1000/secure-codex/0123456789abcdef/auth.json", "/home/me/.codex/auth.json.age");
 * ```
 */
export function checkLink(
  linkPath: string,
  target: string,
  store: string,
  command?: (action: string, ramDir?: string) => string,
): LinkState {
  const state = inspectLink(linkPath, target);
  switch (state.kind) {
    case "missing":
    case "ours":
      return state;
    case "file": {
      const storeExists = lstatOrNull(store) !== null;
      const importCommand = command?.(
        storeExists ? "--import --force" : "--import",
      );
      throw new CliError(`plaintext auth.json found on disk: ${linkPath}`, {
        hints: [
          "secure-codex replaces it with a link into RAM only when the path is free, and never overwrites it",
          `if ${store} already holds this login: move ${linkPath} away, then securely delete it`,
          importCommand !== undefined
            ? storeExists
              ? `to replace ${store} with it and link it: ${importCommand}`
              : `to encrypt it into the store and link it: ${importCommand}`
            : storeExists
            ? `to encrypt it into the store and link it: run secure-codex --import --force with this command's secure-codex options and no codex arguments (--force replaces ${store})`
            : "to encrypt it into the store and link it: run secure-codex --import with this command's secure-codex options and no codex arguments",
        ],
      });
    }
    case "elsewhere": {
      const endedRamDir = endedSessionRamDir(linkPath, state);
      if (endedRamDir !== null) {
        // Sessions replace such a link themselves unless that session is
        // being unlocked at this moment.
        throw new CliError(
          `auth.json links into the RAM directory of an ended session: ${linkPath} -> ${state.target}`,
          {
            hints: [
              `to use that RAM directory again, pass --ram-dir ${endedRamDir}`,
              `or, since it contains no RAM copy, remove the link: rm ${
                shellQuote(linkPath)
              }`,
            ],
          },
        );
      }
      const otherRamDir = linkedRamDir(linkPath, state);
      if (otherRamDir !== null) {
        throw new CliError(
          `auth.json links into the RAM directory of another session: ${linkPath} -> ${state.target}`,
          {
            hints: [
              `to use that session, pass --ram-dir ${otherRamDir}`,
              `to save and end it: ${
                command?.("--cleanup", otherRamDir) ??
                  `secure-codex --ram-dir ${otherRamDir} --cleanup`
              }`,
            ],
          },
        );
      }
      if (!targetExists(linkPath, state.target)) {
        throw new CliError(
          `auth.json is a symlink to a file that does not exist: ${linkPath} -> ${state.target}`,
          {
            hints: [
              "a reboot empties a RAM directory, and an unmounted filesystem hides its files",
              `if nothing should be there, remove the link and run secure-codex again: rm ${
                shellQuote(linkPath)
              }`,
            ],
          },
        );
      }
      throw new CliError(
        `auth.json is a symlink to somewhere else: ${linkPath} -> ${state.target}`,
        {
          hints: [
            `secure-codex needs it to point to ${target}`,
            `check what ${state.target} holds, then remove the link: rm ${
              shellQuote(linkPath)
            }`,
          ],
        },
      );
    }
    case "other":
      throw new CliError(
        `auth.json is neither a file nor a symlink: ${linkPath}`,
        {
          hints: [`remove it, then run secure-codex again`],
        },
      );
  }
}

/**
 * Tells whether a link's target, as stored in the link, exists. A target
 * this user cannot stat counts as existing.
 *
 * @example
 * ```ts
 * console.log(targetExists("/home/me/.codex/auth.json", "../elsewhere.json"));
 * ```
 */
export function targetExists(linkPath: string, target: string): boolean {
  try {
    return lstatOrNull(resolve(dirname(linkPath), target)) !== null;
  } catch {
    return true;
  }
}

/**
 * Creates the link if it is missing. Another process creating the same link
 * at the same moment is fine; anything else appearing there is an error.
 *
 * @example
 * ```ts
 * ensureLink("/home/me/.codex/auth.json", "/run/user/1000/secure-codex/0123456789abcdef/auth.json", "/home/me/.codex/auth.json.age");
 * ```
 */
export function ensureLink(
  linkPath: string,
  target: string,
  store: string,
): void {
  if (checkLink(linkPath, target, store).kind === "ours") return;
  try {
    Deno.symlinkSync(target, linkPath);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw new CliError(
        `cannot create the auth.json link: ${linkPath}: ${
          (error as Error).message
        }`,
      );
    }
    checkLink(linkPath, target, store);
  }
}
