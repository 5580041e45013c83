/**
 * POSIX path helpers. `node:path` would do the same, but importing any
 * `node:` module loads Deno's Node compatibility layer, which costs tens of
 * milliseconds and several MiB on every start (see docs/benchmarks.md).
 *
 * @module
 */

/**
 * Normalizes a POSIX path: collapses `//`, `.` and `..` segments. An empty
 * path becomes `.`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(normalize("/a//b/../c/."), "/a/c");
 * ```
 */
export function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length > 0 && segments[segments.length - 1] !== "..") {
        segments.pop();
      } else if (!absolute) {
        segments.push("..");
      }
      continue;
    }
    segments.push(segment);
  }
  const joined = segments.join("/");
  if (absolute) return "/" + joined;
  return joined === "" ? "." : joined;
}

/**
 * Checks whether a path is absolute.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(isAbsolute("/etc"), true);
 * ```
 */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/**
 * Joins path segments and normalizes the result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(join("/run/user/1000", "secure-codex", "id"), "/run/user/1000/secure-codex/id");
 * ```
 */
export function join(...segments: string[]): string {
  return normalize(segments.filter((segment) => segment !== "").join("/"));
}

/**
 * Resolves segments from right to left into an absolute path, starting from
 * the current directory when none of them is absolute.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(resolve("/home/me/.codex", "../x"), "/home/me/x");
 * ```
 */
export function resolve(...segments: string[]): string {
  let resolved = "";
  for (let i = segments.length - 1; i >= 0 && !isAbsolute(resolved); i--) {
    if (segments[i] === "") continue;
    resolved = resolved === "" ? segments[i] : `${segments[i]}/${resolved}`;
  }
  if (!isAbsolute(resolved)) resolved = `${Deno.cwd()}/${resolved}`;
  return normalize(resolved);
}

/**
 * Returns the directory part of a path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(dirname("/home/me/.codex/auth.json"), "/home/me/.codex");
 * ```
 */
export function dirname(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  if (trimmed === "") return path.startsWith("/") ? "/" : ".";
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return ".";
  if (slash === 0) return "/";
  return trimmed.slice(0, slash);
}

/**
 * Returns the last segment of a path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(basename("/home/me/.codex/auth.json.age"), "auth.json.age");
 * ```
 */
export function basename(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}
