// ESM throughout: several dependencies (typebox, node-pg-migrate) ship only ES modules.
// @swc/jest strips types; `tsc --noEmit` (npm run typecheck) does the type checking.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));

/**
 * The test files (or folders of them, under test/) that need no service: pure logic, and servers
 * a test starts in its own process. They form the `unit` project, which has no global setup, so
 * they run with Postgres and Redis stopped (`npm run test:unit`, or any of these paths with
 * `npm run test:only`). Every other file is `integration`: its project builds the migrated
 * template database first. A file listed here that needs Postgres fails with a message saying so.
 */
const UNIT = [
  'http/keyset-page.test.ts',
  'issues/issue-file.test.ts',
  'issues/public-archive-looks.test.ts',
  'http/limited-body.test.ts',
  'bounces/https-get.test.ts',
  'bounces/listener-limits.test.ts',
  'bounces/providers',
  'bounces/report.test.ts',
  'cli/send-progress.test.ts',
  'config',
  'db/sql-filters.test.ts',
  'delivery/classify-smtp-error.test.ts',
  'delivery/copy-buffers.test.ts',
  'delivery/dot-stuffing.test.ts',
  'delivery/list-unsubscribe.test.ts',
  'delivery/mime-template.test.ts',
  'delivery/relay-pacing.test.ts',
  'ops/engines.test.ts',
  'rendering',
  'sending/message-tokens.test.ts',
  'subscribers/csv-rows.test.ts',
  'subscribers/import-report.test.ts',
  'subscribers/reader-mail-mime.test.ts',
  'subscribers/seen-addresses.test.ts',
];

// A listed path that is gone (a file moved or renamed) would quietly turn its tests into
// integration tests, or drop them: say so instead.
const missing = UNIT.filter((p) => !existsSync(path.join(root, 'test', p)));
if (missing.length) throw new Error(`jest.config.js lists unit test paths that do not exist: ${missing.join(', ')}`);

const unitMatch = UNIT.map((p) => `<rootDir>/test/${p}${p.endsWith('.test.ts') ? '' : '/**/*.test.ts'}`);
const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const unitPaths = UNIT.map((p) => `<rootDir>/test/${escapeRegExp(p)}${p.endsWith('.test.ts') ? '$' : '/'}`);

/** What both projects share. */
const base = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
        module: { type: 'es6' },
      },
    ],
  },
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
};

export default {
  // Most of a test's time is spent waiting on Postgres, Redis, SMTP and child processes, so two
  // files at once on a two-core machine (Jest's default would be one) take ~6 min instead of ~11.
  maxWorkers: Math.max(2, availableParallelism() - 1),
  // A global option: Jest ignores it inside a project.
  testTimeout: 30000,
  projects: [
    { ...base, displayName: 'unit', testMatch: unitMatch },
    {
      ...base,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', ...unitPaths],
      // Jest runs a project's global setup only when some of its tests are selected.
      globalSetup: '<rootDir>/test/support/global-setup.mjs',
      globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
    },
  ],
};
