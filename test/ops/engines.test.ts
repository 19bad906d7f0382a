// Issue 17: `npm ci` on the Node version the README states (package.json's engines) prints no
// EBADENGINE warning: every package in the lock file supports that version. A dependency that
// moves to a newer Node fails here, before a newcomer sees twenty warnings.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from '@jest/globals';
import semver from 'semver';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const json = <T>(file: string) => JSON.parse(readFileSync(path.join(root, file), 'utf8')) as T;

it('every locked package supports the oldest Node that package.json (and the README) accept', () => {
  const pkg = json<{ engines: { node: string } }>('package.json');
  const oldest = semver.minVersion(pkg.engines.node)!.version;
  expect(oldest).toBe('20.19.0');
  const lock = json<{ packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> }>('package-lock.json');
  const unsupported = Object.entries(lock.packages)
    .filter(([where, p]) => where !== '' && p.engines && !Array.isArray(p.engines) && p.engines.node && !semver.satisfies(oldest, p.engines.node))
    .map(([where, p]) => `${where.replace(/^.*node_modules\//, '')}@${p.version} wants node ${(p.engines as { node: string }).node}`);
  expect(unsupported).toEqual([]);
  // And this process runs on a Node that package.json accepts (CI uses the machine's).
  expect(semver.satisfies(process.version, pkg.engines.node)).toBe(true);
});

it('the README states the same Node version', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  expect(readme).toContain('Node 20.19+');
});
