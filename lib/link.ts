/**
 * The `auth.json` link: `<codex home>/auth.json` is a symlink to the RAM copy,
 * so codex reads and writes its tokens in RAM while every other file stays in
 * its real home. codex 0.171 resolves the link before it saves, writing its
 * temp file and rename next to the target.
 *
 * @module
 */

import { dirname, resolve } from "./path.ts";
import { CliError } from "./output.ts";
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
  importCommand?: string,
): LinkState {
  const state = inspectLink(linkPath, target);
  switch (state.kind) {
    case "missing":
    case "ours":
      return state;
    case "file":
      throw new CliError(`plaintext auth.json found on disk: ${linkPath}`, {
        hints: [
          "secure-codex replaces it with a link into RAM only when the path is free, and never overwrites it",
          `if ${store} already holds this login: move ${linkPath} away, then securely delete it`,
          importCommand !== undefined
            ? `to encrypt it into the store and link it: ${importCommand}${
              lstatOrNull(store) !== null ? ` (--force replaces ${store})` : ""
            }`
            : lstatOrNull(store) !== null
            ? `to encrypt it into the store and link it: run secure-codex --import --force with this command's secure-codex options and no codex arguments (--force replaces ${store})`
            : "to encrypt it into the store and link it: run secure-codex --import with this command's secure-codex options and no codex arguments",
        ],
      });
    case "elsewhere":
      throw new CliError(
        `auth.json is a symlink to somewhere else: ${linkPath} -> ${state.target}`,
        {
          hints: [
            `secure-codex needs it to point to ${target}`,
            `check what ${state.target} holds, then remove the link: rm ${linkPath}`,
          ],
        },
      );
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
