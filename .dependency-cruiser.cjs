// Which way imports may run in src/ (`npm run lint:imports`, run by `npm test` and so by CI).
//
//   entry points   bin/, boot.ts, api/ (the HTTP app's assembly), worker/, cli/, startup/
//        ↓
//   capabilities   subscribers/, issues/, sending/, delivery/, bounces/, rendering/, capture/, media/, editor/
//        ↓              (their route files may use http/, the helpers routes share)
//   infrastructure config/, db/, queues/, metrics/, web/, http/, shared/, errors.ts, log.ts, redis.ts
//
// container.ts is the composition root: it may import anything, and everything may take its
// Container type. Type-only imports count: a circle of types is still a circle to a reader.
const capabilities = '^src/(subscribers|issues|sending|delivery|bounces|rendering|capture|media|editor)/';
const entryPoints = '^src/(bin|api|worker|cli|startup)/|^src/boot\\.ts$';
const infrastructure = '^src/(config|db|queues|metrics|web|http|shared)/|^src/(errors|log|redis)\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A circle of imports: split the shared part out into a module both can import.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'infrastructure-stays-low',
      severity: 'error',
      comment: 'Infrastructure imports only infrastructure: shared words go in src/shared/, not in a capability.',
      from: { path: infrastructure },
      to: { path: [capabilities, entryPoints, '^src/container\\.ts$'] },
    },
    {
      name: 'capabilities-never-import-entry-points',
      severity: 'error',
      comment: 'A capability is used by the entry points, never the other way: move what both need lower.',
      from: { path: capabilities },
      to: { path: entryPoints },
    },
    {
      name: 'only-the-cli-imports-the-cli',
      severity: 'error',
      comment: 'The broadside command is a client of the HTTP API; server code never depends on it.',
      from: { pathNot: '^src/(cli|bin)/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'shared-is-a-leaf',
      severity: 'error',
      comment: 'src/shared/ holds words and formatting anything may import: it imports nothing of ours.',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/shared/' },
    },
    {
      name: 'config-is-a-leaf',
      severity: 'error',
      comment: 'Configuration is read by everything and reads nothing of ours but itself and the shared words.',
      from: { path: '^src/config/' },
      to: { path: '^src/', pathNot: '^src/(config|shared)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // TypeScript 7's compiler has no JavaScript API to parse with; swc (already here for jest) does.
    parser: 'swc',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(test|bench|dist)/' },
  },
};
