// `broadside doctor`: the checks `broadside start` makes before it starts, and a few it cannot
// make without sending mail (the relay's greeting and login), run one after another with each
// result kept, so a newcomer sees everything that is wrong at once. Reads only: it creates no
// database, applies no migration and generates no token.
import { readdir, readFile } from 'node:fs/promises';
import pg from 'pg';
import { ConfigError, parseConfig, type AppConfig, type Config } from '../config/index.js';
import { devSecretsFile } from '../config/dev-secrets.js';
import { withDefaultUser } from '../db/connection-url.js';
import { connectToMaintenanceDatabase } from '../db/ensure-database.js';
import { migrationsDir, migrationsTable } from '../db/migrate.js';
import { bannerLines } from './banner.js';
import { apiPorts, portProblem, tryPort, type PlannedPort } from './ports.js';
import { explainPostgresError, postgresTarget } from './postgres-failure.js';
import { evictionWarning, explainRedisFailure, probeRedis, redisServer } from './redis-probe.js';
import { describeSmtpConnectError, describeSmtpLoginError, probeSmtp } from './smtp-probe.js';

export type Mark = 'ok' | 'warn' | 'fail';

/** One check: a mark, what was checked, what was found, and (for warn and fail) what to try. */
export type Finding = { mark: Mark; what: string; found: string; hints?: string[] };

export type Diagnosis = { findings: Finding[]; banner: string[] | undefined };

const CANNOT_START = /^Cannot start: /;

/** A StartupError's lines as a finding: the first says what, the rest what to try. */
function fromLines(what: string, lines: string[], mark: Mark = 'fail'): Finding {
  const [first = '', ...rest] = lines;
  return { mark, what, found: first.replace(CANNOT_START, '').replace(/\.$/, ''), hints: rest };
}

async function postgresFindings(config: Config): Promise<Finding[]> {
  const t = postgresTarget(config.databaseUrl);
  const client = new pg.Client({ connectionString: withDefaultUser(config.databaseUrl), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    if ((err as { code?: string }).code === '3D000') return [await missingDatabase(config)];
    const explained = explainPostgresError(err, config.databaseUrl);
    return [explained ? fromLines('Postgres', explained.lines) : { mark: 'fail', what: 'Postgres', found: (err as Error).message }];
  }
  try {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return [
      { mark: 'ok', what: 'Postgres', found: `${t.server} as ${t.user} (PostgreSQL ${rows[0]?.server_version}), database "${t.database}"` },
      await migrationsFinding(client),
    ];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The database does not exist yet: fine if the start command may create it. */
async function missingDatabase(config: Config): Promise<Finding> {
  const t = postgresTarget(config.databaseUrl);
  let client: pg.Client;
  try {
    client = await connectToMaintenanceDatabase(new URL(withDefaultUser(config.databaseUrl)));
  } catch (err) {
    const explained = explainPostgresError(err, config.databaseUrl);
    return explained ? fromLines('Postgres', explained.lines) : { mark: 'fail', what: 'Postgres', found: (err as Error).message };
  }
  try {
    const { rows } = await client.query<{ may: boolean }>('SELECT rolcreatedb OR rolsuper AS may FROM pg_roles WHERE rolname = current_user');
    if (rows[0]?.may)
      return { mark: 'ok', what: 'Postgres', found: `${t.server} as ${t.user}; database "${t.database}" does not exist yet: the start command creates it` };
    return {
      mark: 'fail',
      what: 'Postgres',
      found: `database "${t.database}" does not exist, and role "${t.user}" may not create it`,
      hints: [
        `DATABASE_URL=${t.shown}. Create it once as a superuser (sudo -u postgres createdb -O ${t.user} ${t.database}), or let the role create databases (ALTER ROLE ${t.user} CREATEDB).`,
      ],
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function migrationsFinding(client: pg.Client): Promise<Finding> {
  const files = (await readdir(migrationsDir)).filter((f) => /\.(sql|js|ts)$/.test(f)).map((f) => f.replace(/\.[^.]+$/, ''));
  let applied: string[] = [];
  try {
    applied = (await client.query<{ name: string }>(`SELECT name FROM ${migrationsTable} ORDER BY run_on, id`)).rows.map((r) => r.name);
  } catch (err) {
    // 42P01 undefined_table: a database no migration ran on yet.
    if ((err as { code?: string }).code !== '42P01') throw err;
  }
  const unknown = applied.filter((name) => !files.includes(name));
  if (unknown.length) {
    return {
      mark: 'fail',
      what: 'migrations',
      found: `the database has ${unknown.length} migration(s) this checkout does not: ${unknown.join(', ')}`,
      hints: ['A newer Broadside migrated it: run that version, or point DATABASE_URL at another database.'],
    };
  }
  const pending = files.filter((f) => !applied.includes(f));
  if (pending.length)
    return {
      mark: 'ok',
      what: 'migrations',
      found: `${applied.length} applied, ${pending.length} pending: the start command (or broadside migrate) applies them`,
    };
  return { mark: 'ok', what: 'migrations', found: `all ${files.length} applied` };
}

async function redisFindings(config: Config): Promise<Finding[]> {
  const probe = await probeRedis(config.redisUrl);
  if (!probe.ok) return [fromLines('Redis', explainRedisFailure(config.redisUrl, probe.error).lines)];
  const found: Finding = { mark: 'ok', what: 'Redis', found: `${redisServer(config.redisUrl)} (Redis ${probe.version})` };
  const warning = evictionWarning(probe.maxmemoryPolicy);
  const policy: Finding = warning
    ? { mark: 'warn', what: 'Redis maxmemory-policy', found: `${probe.maxmemoryPolicy}, not noeviction`, hints: [warning] }
    : probe.maxmemoryPolicy
      ? { mark: 'ok', what: 'Redis maxmemory-policy', found: probe.maxmemoryPolicy }
      : { mark: 'warn', what: 'Redis maxmemory-policy', found: 'unknown (INFO does not say)', hints: ["BullMQ needs noeviction: check the server's setting."] };
  return [found, policy];
}

async function smtpFindings(config: Config): Promise<Finding[]> {
  if (!config.smtpUrl) {
    return [
      {
        mark: 'ok',
        what: 'SMTP',
        found: `SMTP_URL unset: mail goes to the built-in capture server on 127.0.0.1:${config.captureSmtpPort}, kept under ${config.dataDir}/mail`,
      },
    ];
  }
  const probe = await probeSmtp(config.smtpUrl);
  if (probe.connectError) return [fromLines('SMTP relay', describeSmtpConnectError(probe, config.smtpUrl))];
  const out: Finding[] = [{ mark: 'ok', what: 'SMTP relay', found: `${probe.server} greets: ${probe.greeting ?? '(no greeting seen)'}` }];
  if (!probe.login) out.push({ mark: 'ok', what: 'SMTP login', found: 'SMTP_URL names no user: none is tried' });
  else if (probe.login.error) out.push(fromLines('SMTP login', describeSmtpLoginError(probe, config.smtpUrl)));
  else out.push({ mark: 'ok', what: 'SMTP login', found: `accepted as "${probe.login.user}"` });
  return out;
}

/** Loopback for a wildcard bind address: where this machine reaches its own listener. */
const reachable = (host: string) => (['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host);

/**
 * A port is fine when it is free, or when a Broadside already answers on it (the service is
 * running): /healthz on the HTTP port, the SMTP greeting on the capture and bounce ports.
 */
async function portFinding(p: PlannedPort): Promise<{ finding: Finding; broadside: boolean }> {
  const what = `${p.variable}=${p.port}`;
  if (p.port === 0) return { finding: { mark: 'ok', what, found: 'any free port, chosen at start' }, broadside: false };
  const err = await tryPort(p.port, p.host);
  if (!err) return { finding: { mark: 'ok', what, found: `free on ${p.host} (${p.what})` }, broadside: false };
  if (err.code === 'EADDRINUSE') {
    const host = reachable(p.host);
    if (p.variable === 'PORT') {
      const answer = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${p.port}/healthz`, { signal: AbortSignal.timeout(3000) })
        .then(async (res) => (res.ok ? ((await res.json()) as { status?: string }) : undefined))
        .catch(() => undefined);
      if (answer?.status === 'ok') return { finding: { mark: 'ok', what, found: `in use by a running Broadside (its /healthz answers)` }, broadside: true };
    } else {
      const probe = await probeSmtp(`smtp://${host}:${p.port}`, 3000);
      if (probe.greeting?.includes('Broadside'))
        return { finding: { mark: 'ok', what, found: `in use by a running Broadside (${p.what}: ${probe.greeting})` }, broadside: true };
    }
  }
  const { problem, hint } = portProblem(p, err);
  return { finding: { mark: 'fail', what, found: `${problem} (${p.what} on ${p.host})`, hints: [hint] }, broadside: false };
}

/** The development token the service generated, if it did (read, never created). */
async function generatedToken(dataDir: string): Promise<string | undefined> {
  try {
    const token = (JSON.parse(await readFile(devSecretsFile(dataDir), 'utf8')) as { apiToken?: unknown }).apiToken;
    return typeof token === 'string' ? token : undefined;
  } catch {
    return undefined;
  }
}

export async function diagnose(env: NodeJS.ProcessEnv = process.env): Promise<Diagnosis> {
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { findings: [{ mark: 'fail', what: 'configuration', found: `${err.problems.length} problem(s)`, hints: err.problems }], banner: undefined };
  }
  const followsPort = !env.PUBLIC_URL;
  const findings: Finding[] = [
    { mark: 'ok', what: 'configuration', found: `valid${followsPort ? `; PUBLIC_URL unset: ${config.publicUrl} (follows PORT)` : ''}` },
  ];
  findings.push(...(await postgresFindings(config)));
  findings.push(...(await redisFindings(config)));
  findings.push(...(await smtpFindings(config)));
  let running = false;
  for (const p of Object.values(apiPorts(config))) {
    const { finding, broadside } = await portFinding(p);
    findings.push(finding);
    if (p.variable === 'PORT') running = broadside;
  }
  const token = config.apiToken ?? (await generatedToken(config.dataDir));
  const banner = bannerLines({ ...config, apiToken: token ?? '', secret: config.secret ?? '' } as AppConfig, {
    running,
    publicUrlFollowsPort: followsPort,
    tokenGenerated: !config.apiToken,
    capturing: !config.smtpUrl,
  });
  return { findings, banner };
}
