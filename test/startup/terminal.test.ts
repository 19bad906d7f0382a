// `npm start` at a terminal (a real pseudo-terminal, through util-linux's `script`), as a
// newcomer runs it: pretty log lines, one per HTTP request; the banner (address, generated token,
// where mail goes) after every start-up line, and again on Enter; Ctrl-C stops it cleanly.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { configVariables } from '../../src/config/index.js';
import { REDIS_URL } from '../support/context.js';
import { createTestDatabase, databaseUrl, dropTestDatabase } from '../support/db.js';
import { until } from '../support/editor.js';
import { freePort } from '../support/free-port.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Colours and cursor movement: what a terminal interprets and a reader does not see. */
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

let dataDir: string;
let dbName: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-tty-'));
  dbName = await createTestDatabase();
});

afterAll(async () => {
  await dropTestDatabase(dbName);
  await rm(dataDir, { recursive: true, force: true });
});

const onLinux = process.platform === 'linux' ? it : it.skip;

onLinux(
  'prints one line per request, the banner last and again on Enter, and stops on Ctrl-C',
  async () => {
    const [port, capturePort] = [await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of configVariables) delete env[name];
    Object.assign(env, {
      DATABASE_URL: databaseUrl(dbName),
      REDIS_URL,
      PORT: String(port),
      HOST: '127.0.0.1',
      CAPTURE_SMTP_PORT: String(capturePort),
      DATA_DIR: dataDir,
      QUEUE_PREFIX: `bs-test-${randomBytes(4).toString('hex')}`,
      POSTAL_ADDRESS: '1 Test Street',
      TERM: 'xterm',
    });
    const command = `stty cols 120 rows 40; exec ${process.execPath} --import tsx src/bin/start.ts`;
    // stdin is a pipe to `script`, which passes it to the terminal: "\r" is Enter, "\x03" Ctrl-C.
    const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let raw = '';
    child.stdout.on('data', (d: Buffer) => (raw += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (raw += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const lines = () =>
      raw
        .replace(ANSI, '')
        .split(/\r?\n/)
        .map((l) => l.replace(/\r/g, ''));
    try {
      await until('the banner', () => raw.includes('Press Enter to show this again.'), 60_000);
      const base = `http://127.0.0.1:${port}`;
      const banner = lines().findIndex((l) => l.startsWith('  Broadside is running at '));
      expect(lines()[banner]).toBe(`  Broadside is running at http://localhost:${port} (PUBLIC_URL unset: it follows PORT=${port})`);
      // Everything logged while starting came before the banner.
      const logged = lines()
        .map((l, i) => [l, i] as const)
        .filter(([l]) => /^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+: /.test(l));
      expect(logged.map(([l]) => l)).toEqual(
        expect.arrayContaining([expect.stringContaining(`Server listening at ${base}`), expect.stringContaining('worker started')]),
      );
      expect(logged.filter(([, i]) => i > banner)).toEqual([]);
      expect(lines()[banner + 1]).toMatch(/^ {2}Editor API token \(generated, kept in .*secrets\.json\): \S{16,}$/);
      expect(lines()[banner + 2]).toBe(`  Mail is captured, not delivered: http://localhost:${port}/admin/mail (any user name, the token as password)`);
      expect(lines()[banner + 3]).toBe(`  Editor's app: http://localhost:${port}/editor (sign in with the token)`);

      // Three requests: three lines, each saying what was asked and how it went.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/no-such-page`)).status).toBe(404);
      const signup = await fetch(`${base}/subscribe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'tty.reader@example.com' }),
      });
      expect(signup.status).toBe(202);
      await until('the request lines', () => lines().some((l) => / POST \/subscribe 202 in \d+ ms$/.test(l)), 10_000);
      const requestLines = lines().filter((l) => / (GET|POST) \//.test(l));
      expect(requestLines).toEqual([
        expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/healthz 200 in \d+ ms$/),
        expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/no-such-page 404 in \d+ ms$/),
        expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: POST \/subscribe 202 in \d+ ms$/),
      ]);
      expect(raw).not.toContain('incoming request');
      expect(raw).not.toContain('request completed');
      // The address is masked on a terminal too.
      expect(raw).not.toContain('tty.reader@example.com');

      // PUBLIC_URL unset: the confirmation's link follows PORT, here and in the captured mail.
      const mail = path.join(dataDir, 'mail');
      const file = await until('the captured confirmation', async () => (await readdir(mail).catch(() => [])).find((f) => f.endsWith('.eml')), 20_000);
      const captured = (await readFile(path.join(mail, file), 'utf8')).replace(/=\r?\n/g, '');
      expect(captured).toMatch(new RegExp(`http://localhost:${port}/confirm/[\\w.-]+`));
      expect(captured).not.toContain('localhost:3000');

      // Enter: the banner again, below the log.
      child.stdin.write('\r');
      await until('the banner again', () => lines().filter((l) => l.startsWith('  Broadside is running at ')).length === 2, 10_000);

      // Ctrl-C: a clean stop.
      child.stdin.write('\x03');
      expect(await exited).toBe(0);
      expect(lines().some((l) => /INFO: stopped \{"clean":true\}$/.test(l))).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  },
  90_000,
);

onLinux(
  'started in the background of a terminal (npm start &), it is not stopped for reading it, and offers no Enter',
  async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of configVariables) delete env[name];
    Object.assign(env, {
      DATABASE_URL: databaseUrl(dbName),
      REDIS_URL,
      PORT: String(port),
      HOST: '127.0.0.1',
      CAPTURE_SMTP_PORT: String(await freePort()),
      DATA_DIR: dataDir,
      QUEUE_PREFIX: `bs-test-${randomBytes(4).toString('hex')}`,
      POSTAL_ADDRESS: '1 Test Street',
    });
    // An interactive shell's job control: the service runs as a background job of the terminal.
    const command = `set -m; ${process.execPath} --import tsx src/bin/start.ts & echo "PID=$!"; wait`;
    const child = spawn('script', ['-qefc', `bash -c '${command}'`, '/dev/null'], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let raw = '';
    child.stdout.on('data', (d: Buffer) => (raw += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (raw += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    let pid = 0;
    try {
      pid = Number(await until('the pid', () => /PID=(\d+)/.exec(raw)?.[1], 20_000));
      await until('the banner', () => raw.includes('Broadside is running at'), 60_000);
      expect(raw).not.toContain('Press Enter');
      // Still running (a process stopped by SIGTTIN is in state T), and answering.
      const state = async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '')[0];
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(await state()).not.toBe('T');
      process.kill(pid, 'SIGTERM');
      expect(await exited).toBe(0);
      expect(raw.replace(ANSI, '')).toMatch(/INFO: stopped \{"clean":true\}/);
    } finally {
      if (pid && child.exitCode === null) process.kill(pid, 'SIGKILL');
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  },
  90_000,
);
