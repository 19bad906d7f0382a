// ESM throughout: several dependencies (typebox, node-pg-migrate) ship only ES modules.
// @swc/jest strips types; `tsc --noEmit` (npm run typecheck) does the type checking.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'es6' },
    }],
  },
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // light-my-request (Fastify's inject) require()s cookie 2, which is ESM-only; Node 20.19+
    // allows that, Jest's module loader does not before Node 24.9. Tests get cookie 1.1, the
    // same API in CommonJS. Production code is unaffected.
    '^cookie$': 'cookie-cjs',
    // The same for content-disposition 3 (ESM-only), which @fastify/static require()s for
    // reply.download only: a stand-in that throws if it is ever called.
    '^content-disposition$': '<rootDir>/test/support/content-disposition-cjs.cjs',
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 30000,
};
