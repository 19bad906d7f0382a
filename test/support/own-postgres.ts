import { execFile } from 'node:child_process';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port.js';

const run = promisify(execFile);
const BIN = process.env.POSTGRES_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';

/**
 * A Postgres cluster of a test's own (initdb in a temp dir, on a free loopback port), for tests
 * that restart, stop or cut off the database: the shared server on 5432 must never be touched.
 * Runs as the `postgres` OS user (Postgres refuses to run as root), through `runuser`.
 */
export class OwnPostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  /** initdb, configure (trust auth on loopback, socket in the data dir, no fsync) and start. */
  static async start(): Promise<OwnPostgres> {
    const parent = await mkdtemp(path.join(tmpdir(), 'broadside-pg-'));
    const dir = path.join(parent, 'data');
    const { uid, gid } = await osUser();
    await chown(parent, uid, gid);
    const pgc = new OwnPostgres(dir, await freePort());
    try {
      await pgc.asPostgres('initdb', ['-D', dir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
      await appendFile(
        path.join(dir, 'postgresql.conf'),
        [
          `port = ${pgc.port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${dir}'`,
          // The machine does not crash in these tests, only Postgres: the page cache keeps what
          // was written, so fsync adds nothing but time.
          'fsync = off',
          'full_page_writes = off',
          'max_connections = 200',
          '',
        ].join('\n'),
      );
      await pgc.startServer();
    } catch (err) {
      await rm(parent, { recursive: true, force: true });
      throw err;
    }
    return pgc;
  }

  /** A URL for `database` on this server, as the service's DATABASE_URL. */
  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Starts the server and waits until it accepts connections. */
  async startServer(): Promise<void> {
    await this.pgCtl(['start', '-w', '-t', '60', '-l', path.join(this.dir, '..', 'server.log')]);
  }

  /**
   * Stops the server. `immediate` is a crash as far as clients are concerned: every backend is
   * killed at once, nothing is checkpointed, and the next start runs crash recovery.
   */
  async stopServer(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await this.pgCtl(['stop', '-w', '-t', '60', '-m', mode]);
  }

  /** `pg_ctl restart -m immediate`: down and back up, crash recovery included. */
  async restart(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await this.pgCtl(['restart', '-w', '-t', '60', '-m', mode, '-l', path.join(this.dir, '..', 'server.log')]);
  }

  /**
   * Terminates every backend whose application_name is `applicationName` (what a DBA's
   * `pg_terminate_backend`, a connection-limiting proxy or an idle timeout does). Returns how many.
   */
  async terminateBackends(applicationName: string): Promise<number> {
    return this.admin(async (client) => {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
           FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
        [applicationName],
      );
      return rows[0]!.n;
    });
  }

  /** Runs `fn` with a client on the `postgres` database (not counted as the service's). */
  async admin<T>(fn: (client: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
    const client = new pg.Client({ connectionString: this.url(database), application_name: 'broadside-test-admin' });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  /** Stops the server (if running) and removes its files. */
  async destroy(): Promise<void> {
    await this.pgCtl(['stop', '-w', '-t', '60', '-m', 'immediate']).catch(() => undefined);
    await rm(path.dirname(this.dir), { recursive: true, force: true });
  }

  /** The server's own log, for a failure message. */
  logPath(): string {
    return path.join(this.dir, '..', 'server.log');
  }

  private async pgCtl(args: string[]): Promise<void> {
    await this.asPostgres('pg_ctl', ['-D', this.dir, ...args]);
  }

  private async asPostgres(bin: string, args: string[]): Promise<void> {
    const asRoot = process.getuid?.() === 0;
    const [cmd, argv] = asRoot ? ['runuser', ['-u', OS_USER, '--', path.join(BIN, bin), ...args]] : [path.join(BIN, bin), args];
    try {
      await run(cmd, argv, { cwd: tmpdir() });
    } catch (err) {
      const e = err as Error & { stderr?: string; stdout?: string };
      throw new Error(`${bin} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }
}

async function osUser(): Promise<{ uid: number; gid: number }> {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!() };
  const { stdout: uid } = await run('id', ['-u', OS_USER]);
  const { stdout: gid } = await run('id', ['-g', OS_USER]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}
