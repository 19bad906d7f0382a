// The editor's web app is built by `npm run build` (which `npm ci` runs) into dist/editor-app/.
// Its tests serve that build, so a missing or stale one would test something else than the
// sources: they fail, saying what to run, instead.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EDITOR_SOURCES = path.join(root, 'web/editor');
export const EDITOR_BUILD = path.join(root, 'dist/editor-app');

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

/** Throws unless dist/editor-app/ holds a build at least as new as every file in web/editor/. */
export function requireBuiltEditorApp(): void {
  const index = path.join(EDITOR_BUILD, 'index.html');
  if (!existsSync(index)) throw new Error(`the editor's app is not built (${index} is missing): run \`npm run build\``);
  if (newest(EDITOR_SOURCES) > statSync(index).mtimeMs) {
    throw new Error("the editor's app in dist/editor-app/ is older than its sources in web/editor/: run `npm run build` (or `npm run build:editor`)");
  }
}
