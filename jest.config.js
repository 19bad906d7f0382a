// ESM throughout: several dependencies (typebox, node-pg-migrate) ship only ES modules.
// @swc/jest strips types; `tsc --noEmit` (npm run typecheck) does the type checking.
import { availableParallelism } from 'node:os';

export default {
  testEnvironment: 'node',
  // Most of a test's time is spent waiting on Postgres, Redis, SMTP and child processes, so two
  // files at once on a two-core machine (Jest's default would be one) take ~6 min instead of ~11.
  maxWorkers: Math.max(2, availableParallelism() - 1),
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'es6' },
    }],
  },
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 30000,
};
