// `broadside start` runs the service; the editor commands then work against it with nothing but
// the development token it generated (no API_TOKEN anywhere), as on an editor's laptop.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { REDIS_URL } from '../support/context.js';
import { databaseUrl, dropTestDatabase } from '../support/db.js';
import { until } from '../support/editor.js';
import { SmtpSink } from '../support/smtp-sink.js';
import { runCli, startCli, type CliRun } from './run-cli.js';

const name = `broadside_test_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
const prefix = `bs-test-${randomBytes(4).toString('hex')}`;
let dataDir: string;
let smtp: SmtpSink;
let service: CliRun | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-cli-start-'));
  smtp = await new SmtpSink().start();
});

afterAll(async () => {
  if (service && service.child.exitCode === null) {
    service.child.kill('SIGKILL');
    await service.done;
  }
  await smtp.close();
  await dropTestDatabase(name);
  await rm(dataDir, { recursive: true, force: true });
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
});

it('broadside start serves the editor commands, which find its generated token in DATA_DIR; SIGTERM stops it', async () => {
  service = startCli(['start'], {
    DATABASE_URL: databaseUrl(name),
    REDIS_URL,
    SMTP_URL: smtp.url,
    PORT: '0',
    HOST: '127.0.0.1',
    PUBLIC_URL: 'http://broadside.test',
    DATA_DIR: dataDir,
    QUEUE_PREFIX: prefix,
    POSTAL_ADDRESS: '1 Test Street',
    LOG_LEVEL: 'info',
  });
  const running = service;
  const listening = await until('the service to listen', () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(running.stdout)?.[1], 30_000);
  await until('the service to be ready', () => running.stdout.includes('Broadside is running at'), 10_000);
  // Only what a shell on the same machine has: the address and the data directory.
  const env = { BROADSIDE_URL: listening, DATA_DIR: dataDir };

  const csv = path.join(dataDir, 'readers.csv');
  await writeFile(csv, 'email,name\nada@example.com,Ada\ngrace@example.com,Grace\n');
  const imported = await runCli(['import', csv], env);
  expect({ code: imported.code, stderr: imported.stderr }).toEqual({ code: 0, stderr: '' });
  expect(imported.stdout).toContain('2 rows read, 2 added, 0 rejected.');

  const md = path.join(dataDir, 'issue.md');
  await writeFile(md, '---\nsubject: From start to finish\n---\nHello.\n\n## News\n\nText.\n');
  const published = await runCli(['publish', md], env);
  expect({ code: published.code, stderr: published.stderr }).toEqual({ code: 0, stderr: '' });
  const slug = /^ {2}slug: +(\S+)$/m.exec(published.stdout)![1]!;

  const sent = await runCli(['send', slug, '--yes'], env);
  expect({ code: sent.code, stderr: sent.stderr }).toEqual({ code: 0, stderr: '' });
  expect(sent.stdout).toContain('Done: submitted 2, failed 0, bounced 0, cancelled 0 of 2 readers');
  expect(
    smtp.messages
      .filter((m) => m.parsed.subject === 'From start to finish')
      .flatMap((m) => m.recipients)
      .sort(),
  ).toEqual(['ada@example.com', 'grace@example.com']);

  // The service prints its generated token at start (for the operator); the CLI never does.
  const { apiToken } = JSON.parse(await readFile(path.join(dataDir, 'secrets.json'), 'utf8')) as { apiToken: string };
  expect(apiToken.length).toBeGreaterThanOrEqual(16);
  for (const r of [imported, published, sent]) expect(r.stdout + r.stderr).not.toContain(apiToken);

  running.child.kill('SIGTERM');
  const stopped = await running.done;
  expect({ code: stopped.code, tail: stopped.code === 0 ? '' : stopped.stdout.slice(-2000) + stopped.stderr }).toEqual({ code: 0, tail: '' });
  expect(stopped.stdout).toContain('"msg":"stopped"');
}, 60_000);
