import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { configVariables, parseConfig } from '../../src/config/schema.js';

// No Docker engine runs where the tests run, so the deployment files are checked as data: the
// compose file against the config schema and package.json, the Dockerfile's stages as text.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

type Service = {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  ports?: (string | number | { target?: number; published?: number | string })[];
  healthcheck?: { test?: string | string[] };
  container_name?: string;
  volumes?: (string | { source?: string; target?: string })[];
};

const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };
const services = compose.services;
const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;

/** Compose accepts a command as a string or a list; compare them as lists of words. */
function words(cmd: string | string[] | undefined): string[] {
  if (cmd === undefined) return [];
  return Array.isArray(cmd) ? cmd.map(String) : cmd.trim().split(/\s+/);
}

/** Compose accepts environment as a mapping or as a list of KEY=value. */
function environmentOf(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const eq = entry.indexOf('=');
        return eq < 0 ? [entry, ''] : [entry.slice(0, eq), entry.slice(eq + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/**
 * What compose would pass to the container with none of the variables set in the shell: the
 * `:-` default, or for a required `:?` variable a value valid for the schema, so that the result
 * can be fed to parseConfig.
 */
function interpolate(value: string, required: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::?([-?])([^}]*))?\}/g, (_m, name: string, op: string | undefined, arg: string | undefined) => {
    if (op === '-') return arg ?? '';
    if (op === '?') {
      const v = required[name];
      if (v === undefined) throw new Error(`no test value for required variable ${name}`);
      return v;
    }
    throw new Error(`\${${name}} has neither a default nor a required marker`);
  });
}

function dependsOn(s: Service): Record<string, string | undefined> {
  const d = s.depends_on ?? {};
  // The short (list) form means service_started, which is not enough here.
  if (Array.isArray(d)) return Object.fromEntries(d.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v?.condition]));
}

const app = ['api', 'worker'] as const;

describe('docker-compose.yml', () => {
  it('has postgres 16, redis 7, mailpit, the api and the worker', () => {
    expect(Object.keys(services).sort()).toEqual(expect.arrayContaining(['api', 'mailpit', 'postgres', 'redis', 'worker']));
    expect(services.postgres?.image).toMatch(/^postgres:16(\b|$)/);
    expect(services.redis?.image).toMatch(/^redis:7(\b|$)/);
    expect(services.mailpit?.image).toMatch(/^axllent\/mailpit(:|$)/);
  });

  it('builds api and worker from the Dockerfile as one image', () => {
    for (const name of app) {
      const build = services[name]?.build;
      const context = typeof build === 'string' ? build : build?.context;
      const dockerfile = typeof build === 'object' ? (build.dockerfile ?? 'Dockerfile') : 'Dockerfile';
      expect([name, context]).toEqual([name, '.']);
      expect(dockerfile).toBe('Dockerfile');
    }
    expect(services.api?.image).toBeDefined();
    expect(services.worker?.image).toBe(services.api?.image);
  });

  it('runs the package.json start:api and start:worker scripts: the compiled entry points the tests run from source', () => {
    expect(words(services.api?.command)).toEqual(['npm', 'run', 'start:api']);
    expect(words(services.worker?.command)).toEqual(['npm', 'run', 'start:worker']);
    expect(scripts['start:api']).toBe('node dist/bin/api.js');
    expect(scripts['start:worker']).toBe('node dist/bin/worker.js');
    // dist/ mirrors src/ (tsconfig.build.json); test/support/worker-process.ts runs src/bin/worker.ts.
    expect(existsSync(path.join(root, 'src/bin/api.ts'))).toBe(true);
    expect(existsSync(path.join(root, 'src/bin/worker.ts'))).toBe(true);
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect([build.compilerOptions.rootDir, build.compilerOptions.outDir]).toEqual(['src', 'dist']);
  });

  it('sets on api and worker only variables the service reads', () => {
    for (const name of app) {
      const unknown = Object.keys(environmentOf(services[name]!)).filter((k) => !configVariables.includes(k));
      expect([name, unknown]).toEqual([name, []]);
    }
  });

  it('points api and worker at the compose postgres, redis and mailpit, with a shared secret and token', () => {
    for (const name of app) {
      const env = environmentOf(services[name]!);
      expect(env.SMTP_URL).toBe('smtp://mailpit:1025');
      expect(new URL(interpolate(env.DATABASE_URL ?? '', {})).host).toBe('postgres:5432');
      expect(new URL(interpolate(env.REDIS_URL ?? '', {})).hostname).toBe('redis');
      expect(env.PUBLIC_URL).toBeDefined();
      // Taken from the shell, or generated once into DATA_DIR: that directory must be the one
      // shared volume, or a link signed by one process would fail in another.
      expect(env.API_TOKEN).toMatch(/^\$\{API_TOKEN:?[?-][^}]*\}$/);
      expect(env.SECRET).toMatch(/^\$\{SECRET:?[?-][^}]*\}$/);
      expect(services[name]!.volumes).toContain(`broadside-data:${env.DATA_DIR}`);
    }
    expect(environmentOf(services.worker!)).toEqual(environmentOf(services.api!));
  });

  it('gives api and worker a configuration the service accepts', () => {
    const required = { API_TOKEN: 'a'.repeat(24), SECRET: 'b'.repeat(40), POSTGRES_PASSWORD: 'pw' };
    for (const name of app) {
      const env = Object.fromEntries(Object.entries(environmentOf(services[name]!)).map(([k, v]) => [k, interpolate(v, required)]));
      expect(() => parseConfig(env)).not.toThrow();
    }
  });

  it('starts api and worker only once postgres and redis are healthy', () => {
    for (const name of app) {
      const deps = dependsOn(services[name]!);
      expect([name, deps.postgres, deps.redis]).toEqual([name, 'service_healthy', 'service_healthy']);
    }
  });

  it('health-checks postgres, redis and the api', () => {
    expect(words(services.postgres?.healthcheck?.test).join(' ')).toContain('pg_isready');
    expect(words(services.redis?.healthcheck?.test).join(' ')).toMatch(/redis-cli.*ping/);
    expect(words(services.api?.healthcheck?.test).join(' ')).toContain('/healthz');
  });

  it('keeps BullMQ safe in redis: no eviction, append-only file on', () => {
    const cmd = words(services.redis?.command);
    const option = (flag: string) => cmd[cmd.indexOf(flag) + 1];
    expect(cmd).toContain('--maxmemory-policy');
    expect(option('--maxmemory-policy')).toBe('noeviction');
    expect(cmd).toContain('--appendonly');
    expect(option('--appendonly')).toBe('yes');
  });

  it('publishes the api on 3000 and mailpit on 1025 and 8025', () => {
    const targets = (s: Service | undefined) =>
      (s?.ports ?? []).map((p) => (typeof p === 'object' ? Number(p.target) : Number(String(p).split(':').at(-1)!.split('/')[0])));
    expect(targets(services.api)).toContain(3000);
    expect(targets(services.mailpit)).toEqual(expect.arrayContaining([1025, 8025]));
  });

  it('lets the worker scale with --scale worker=N: no published port, no fixed container name', () => {
    expect(services.worker?.ports ?? []).toEqual([]);
    expect(services.worker?.container_name).toBeUndefined();
  });
});

type Instruction = { keyword: string; args: string };
type Stage = { from: string; name?: string; instructions: Instruction[] };

/** Splits a Dockerfile into stages of instructions, joining continued lines and dropping comments. */
function stagesOf(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      current += line.replace(/\\\s*$/, ' ');
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = '';
  }
  if (current.trim()) logical.push(current.trim());
  const stages: Stage[] = [];
  for (const l of logical) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(l) ?? [];
    const ins = { keyword: keyword.toUpperCase(), args };
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      stages.push({ from: m?.[1] ?? '', name: m?.[2], instructions: [] });
    } else if (stages.length) {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  const stages = stagesOf(read('Dockerfile'));
  const final = stages.at(-1)!;
  const runs = (s: Stage) =>
    s.instructions
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');

  it('is multi-stage, with a build stage that installs everything, type-checks and compiles', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => /\bnpx tsc --noEmit\b/.test(runs(s)));
    expect(build).toBeDefined();
    expect(runs(build!)).toMatch(/\bnpm ci\b(?![^\n]*--omit=dev)/);
    expect(runs(build!)).toMatch(/\bnpm run build\b/);
    expect(build).not.toBe(final);
    // The runtime image runs what the build stage compiled.
    expect(final.instructions.some((i) => i.keyword === 'COPY' && new RegExp(`--from=${build!.name}\\b.*\\bdist\\b`).test(i.args))).toBe(true);
  });

  it('runs on node:20-bookworm-slim with production dependencies only', () => {
    expect(final.from).toMatch(/^node:20-bookworm-slim(@sha256:[0-9a-f]+)?$/);
    // node_modules come from a stage (or a step) that installed with --omit=dev, never from the build stage.
    const sources = final.instructions.filter((i) => i.keyword === 'COPY' && /node_modules/.test(i.args)).map((i) => /--from=(\S+)/.exec(i.args)?.[1]);
    const prodInstall = (s: Stage) => /\bnpm ci\b[^\n]*--omit=dev/.test(runs(s));
    if (sources.length === 0) {
      expect(prodInstall(final)).toBe(true);
    } else {
      for (const from of sources) {
        const stage = stages.find((s) => s.name === from);
        expect([from, stage && prodInstall(stage)]).toEqual([from, true]);
      }
    }
  });

  it('runs as a user that is not root', () => {
    const users = final.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args.split(':')[0]!.trim());
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0', '']).not.toContain(users.at(-1));
  });

  it('starts with a package.json script that exists', () => {
    const cmd = final.instructions.filter((i) => i.keyword === 'CMD').at(-1);
    expect(cmd).toBeDefined();
    const argv = JSON.parse(cmd!.args) as string[];
    expect(argv[0]).toBe('npm');
    const script = argv[1] === 'run' ? argv[2]! : argv[1]!;
    expect(scripts[script]).toBeDefined();
  });

  it('keeps local dependencies and state out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim().replace(/^\/|\/$/g, ''));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.git', '.data', '.env']));
  });
});
