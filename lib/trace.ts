/**
 * Phase timestamps for `scripts/bench`, which reports where a start spends
 * its time. When `SECURE_CODEX_TRACE` names a file, the process appends one
 * JSON line to it at exit: `[phase, milliseconds since the process started]`
 * pairs. Phases are fixed names from this program, never values, paths or
 * tokens. Unset, {@linkcode mark} only tests a boolean.
 *
 * @module
 */

const target = Deno.env.get("SECURE_CODEX_TRACE");
const marks: [string, number][] = [];

/**
 * Records that `phase` ended now.
 *
 * @example
 * ```ts
 * mark("options");
 * ```
 */
export function mark(phase: string): void {
  if (target) marks.push([phase, Math.round(performance.now() * 100) / 100]);
}

/**
 * Appends the recorded phases to the trace file, if tracing is on and the
 * path is a regular file or free. A trace that cannot be written is dropped:
 * it must never change how a run ends.
 *
 * @example
 * ```ts
 * mark("exit");
 * writeTrace();
 * ```
 */
export function writeTrace(): void {
  if (!target || marks.length === 0) return;
  try {
    // Only a regular file or a new one: opening a FIFO without a reader
    // would block the exit.
    let existing: Deno.FileInfo | null = null;
    try {
      existing = Deno.lstatSync(target);
    } catch {
      // Created by the write below.
    }
    if (existing !== null && !existing.isFile) return;
    Deno.writeTextFileSync(target, JSON.stringify(marks) + "\n", {
      append: true,
    });
  } catch {
    // Tracing is for the bench only.
  }
}
