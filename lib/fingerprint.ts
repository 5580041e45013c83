/**
 * Identities of file versions: a fingerprint from the stat, which is cheap,
 * and a SHA-256 of the content. Both threads use them, so the worker imports
 * this small module rather than the main thread's modules.
 *
 * @module
 */

/** The identity of one version of a file: device, inode, size, mtime and ctime. */
export type Fingerprint = string;

/**
 * Computes the fingerprint of a file from its stat, the same way in both
 * threads, so the main thread can tell an unchanged RAM copy without reading it.
 *
 * @example
 * ```ts
 * const fingerprint = fingerprintOf(Deno.lstatSync("/etc/hostname"));
 * ```
 */
export function fingerprintOf(info: Deno.FileInfo): Fingerprint {
  return [
    info.dev,
    info.ino,
    info.size,
    info.mtime?.getTime(),
    info.ctime?.getTime(),
  ].join(":");
}

/**
 * Computes the SHA-256 of some bytes as lowercase hex.
 *
 * @example
 * ```ts
 * const digest = await sha256Hex(new Uint8Array([1, 2, 3]));
 * console.log(digest.length); // 64
 * ```
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(new Uint8Array(digest))
    .map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}
