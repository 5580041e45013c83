/**
 * The start-up floor of `scripts/bench_floor.ts` plus the Node.js
 * compatibility modules secure-codex imports (`node:fs` for statfs,
 * `node:path`), so the bench can show what loading them costs.
 *
 * @module
 */

import "node:fs";
import "node:path";
import "./bench_floor.ts";
