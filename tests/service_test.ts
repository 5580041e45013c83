/**
 * Checks the systemd user unit shipped for `--watch`: it must start the
 * watcher for every profile, stop it with SIGTERM (which makes it save a last
 * time) and be installable with `systemctl --user enable`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { parseArguments, resolveOptions } from "../lib/options.ts";

const UNIT = join(ROOT, "scripts", "secure-codex-watch.service");

/** Parses an INI-style unit file into section -> key -> values. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    assert.ok(current !== null, `key outside a section: ${line}`);
    const equals = line.indexOf("=");
    assert.ok(equals > 0, `not a key=value line: ${line}`);
    const key = line.slice(0, equals);
    const values = current.get(key) ?? [];
    values.push(line.slice(equals + 1));
    current.set(key, values);
  }
  return sections;
}

Deno.test("watch unit starts --watch for all profiles", async () => {
  const unit = parseUnit(await Deno.readTextFile(UNIT));
  const execStart = unit.get("Service")?.get("ExecStart");
  assert.equal(execStart?.length, 1);
  const [program, ...args] = execStart![0].split(/\s+/);
  assert.match(program, /\/secure-codex$/);
  const options = resolveOptions(
    parseArguments(args),
    { HOME: "/home/me" },
    null,
  );
  assert.equal(options.mode, "watch");
  assert.equal(options.allProfiles, true);
  assert.deepEqual(options.codexArgs, []);
});

Deno.test("watch unit stops with SIGTERM and is installable", async () => {
  const unit = parseUnit(await Deno.readTextFile(UNIT));
  assert.equal(unit.get("Service")?.get("Type")?.[0], "simple");
  assert.equal(unit.get("Service")?.get("KillSignal")?.[0], "SIGTERM");
  assert.equal(unit.get("Install")?.get("WantedBy")?.[0], "default.target");
  assert.ok(unit.get("Unit")?.get("Description")?.[0]);
});
