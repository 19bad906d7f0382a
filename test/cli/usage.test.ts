// The `broadside` CLI's usage, its exit codes without a service, and its operator commands.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { withDefaultUser } from '../../src/db/connection-url.js';
import { databaseUrl, dropTestDatabase } from '../support/db.js';
import { runCli } from './run-cli.js';

// No service is needed to check usage: the address is one that nothing listens on.
const NOWHERE = { BROADSIDE_URL: 'http://127.0.0.1:9', API_TOKEN: 'some-editor-token-0123456789' };

const COMMAND_NAMES = [
  'publish',
  'unpublish',
  'send',
  'reschedule',
  'unschedule',
  'retry-failed',
  'preview',
  'upload',
  'watch',
  'status',
  'pause',
  'resume',
  'cancel',
  'import',
  'start',
  'api',
  'worker',
  'doctor',
  'migrate',
];

describe('help', () => {
  it('broadside --help lists every command on stdout and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await runCli(args, NOWHERE);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(/^Usage: broadside <command> \[options\]\n/);
      // Each command's line: its name and operands, then at least two spaces before its summary.
      for (const name of COMMAND_NAMES) expect(r.stdout).toMatch(new RegExp(`^ {2}${name}( <[\\w.]+>)? {2,}\\S`, 'm'));
      expect(r.stdout).toContain('Exit status: 0 success, 1 the operation failed, 2 usage error.');
    }
  });

  it("broadside <command> --help shows that command's usage and options", async () => {
    const [send, help, imp, start] = await Promise.all([
      runCli(['send', '--help'], NOWHERE),
      runCli(['help', 'send'], NOWHERE),
      runCli(['import', '-h'], NOWHERE),
      runCli(['start', '--help'], NOWHERE),
    ]);
    expect({ code: send.code, stderr: send.stderr }).toEqual({ code: 0, stderr: '' });
    expect(send.stdout).toMatch(/^Usage: broadside send <issue> \[options\]\n/);
    for (const option of ['--at <time>', '--detach', '--interval <s>', '--url <url>', '--token <token>']) expect(send.stdout).toContain(option);
    expect(help.stdout).toBe(send.stdout);
    expect(imp.stdout).toMatch(/^Usage: broadside import <file.csv> \[options\]\n/);
    expect(imp.stdout).toContain('--json');
    // The operator's commands take no --url or --token.
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/^Usage: broadside start\n/);
    expect(start.stdout).not.toContain('--url');
  });

  it("--version prints the package's version", async () => {
    const r = await runCli(['--version'], NOWHERE);
    expect(r).toMatchObject({ code: 0, stdout: `${JSON.parse(readFileSync('package.json', 'utf8')).version}\n` });
  });
});

describe('usage errors exit 2 with a message on stderr and nothing on stdout', () => {
  const cases: [string[], string, string | undefined][] = [
    [[], 'no command given', undefined],
    [['frobnicate'], 'unknown command "frobnicate"', undefined],
    [['help', 'frobnicate'], 'unknown command "frobnicate"', undefined],
    [['send'], 'missing <issue>', 'send'],
    [['publish'], 'missing <file.md>', 'publish'],
    [['publish', 'a.md', 'b.md'], 'unexpected argument "b.md"', 'publish'],
    [['status', 'x', '--bogus'], 'unknown option --bogus', 'status'],
    [['status', 'x', '--interval', '2'], 'unknown option --interval', 'status'],
    [['send', 'x', '--at'], '--at needs a value', 'send'],
    [
      ['send', 'x', '--at', 'next tuesday'],
      '--at must be an ISO date and time such as 2026-11-12T09:00:00Z or 2026-11-12T10:00+01:00, got "next tuesday"',
      'send',
    ],
    [['send', 'x', '--at', '2026-13-45T99:00:00Z'], '--at is not a valid date and time: "2026-13-45T99:00:00Z"', 'send'],
    [['send', 'x', '--interval', '0'], '--interval must be a number of seconds above 0 and at most 3600, got "0"', 'send'],
    [['--url', 'ftp://example.com', 'status', 'x'], '--url must start with http:// or https://', undefined],
    [['status', 'x', '--url', 'http://editor:secret@example.com'], '--url must not carry credentials: give the API token with --token or API_TOKEN', undefined],
    [['migrate', '--url', 'http://x'], 'unknown option --url', 'migrate'],
    [['worker', 'extra'], 'unexpected argument "extra"', 'worker'],
  ];

  it.each(cases)('broadside %j', async (args, message, command) => {
    const r = await runCli(args, NOWHERE);
    expect(r).toEqual({
      code: 2,
      signal: null,
      stdout: '',
      stderr: `broadside: ${message}\n${command ? `Run "broadside ${command} --help" for its usage.` : 'Run "broadside --help" for usage.'}\n`,
    });
  });

  it('a bad BROADSIDE_URL or PORT in the environment is a usage error too', async () => {
    const [url, port] = await Promise.all([
      runCli(['status', 'x'], { ...NOWHERE, BROADSIDE_URL: 'not a url' }),
      runCli(['status', 'x'], { API_TOKEN: NOWHERE.API_TOKEN, PORT: '99999' }),
    ]);
    expect([url.code, url.stderr.split('\n')[0]]).toEqual([2, 'broadside: BROADSIDE_URL must be a URL such as http://127.0.0.1:3000']);
    expect([port.code, port.stderr.split('\n')[0]]).toEqual([2, 'broadside: PORT must be a port number, got "99999"']);
  });
});

/** A loopback port that nothing listens on: taken from the OS, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('no service', () => {
  it('exits 1 and says how to start it, for every editor command', async () => {
    const port = await closedPort();
    const env = { API_TOKEN: NOWHERE.API_TOKEN, PORT: String(port) };
    const results = await Promise.all([runCli(['status', 'x'], env), runCli(['send', '12', '--detach'], env), runCli(['import', 'package.json'], env)]);
    for (const r of results) {
      expect(r).toEqual({
        code: 1,
        signal: null,
        stdout: expect.not.stringMatching(/\S/),
        stderr:
          `error: no Broadside service answers at http://127.0.0.1:${port} (ECONNREFUSED).\n` +
          'Start it with "broadside start" (or "npm start"), or point --url or BROADSIDE_URL at where it runs.\n',
      });
      expect(r.stdout + r.stderr).not.toContain(NOWHERE.API_TOKEN);
    }
  });

  it('publish reads and checks the file before it needs the service', async () => {
    const r = await runCli(['publish', 'README.md'], NOWHERE);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: README.md has no subject: start the file with front matter ("---", "subject: …", "---") or pass --subject\n');
  });
});

describe('broadside migrate', () => {
  const name = `broadside_test_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  afterAll(() => dropTestDatabase(name));

  it('creates the missing database and applies the migrations', async () => {
    const r = await runCli(['migrate'], { DATABASE_URL: databaseUrl(name), DATA_DIR: `/tmp/${name}`, LOG_LEVEL: 'info' });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('created database');
    expect(r.stdout).toContain('database is up to date');
    const client = new pg.Client({ connectionString: withDefaultUser(databaseUrl(name)) });
    await client.connect();
    try {
      const tables = await client.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
      expect(tables.rows.map((row) => row.tablename)).toEqual(expect.arrayContaining(['pgmigrations', 'subscribers', 'issues', 'sends', 'messages']));
    } finally {
      await client.end();
    }
  }, 60_000);

  it('reports a bad configuration and exits 1', async () => {
    const r = await runCli(['migrate'], { DATABASE_URL: 'mysql://nope', LOG_LEVEL: 'info' });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('DATABASE_URL must use postgres: or postgresql:');
  });
});
