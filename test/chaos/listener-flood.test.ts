// Floods the bounce listener of a real API process (`src/bin/api.ts` in a child process, with the
// default limits) the way issue 12 reported it: many anonymous clients sending big random mails
// all at once. The process must stay up, its memory and what it stores stay bounded, and an
// honest DSN sent in the middle of the flood is taken and recorded.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';
import { mib, watchMemory } from '../support/process-memory.js';
import { deliver, type SmtpReply } from '../support/smtp-client.js';
import { until } from '../support/wait.js';
import { killAllWorkerProcesses, startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

const DOMAIN = 'bounces.broadside.test';
const MIB = 1024 * 1024;
const t = useTestContext({ env: { BOUNCE_DOMAIN: DOMAIN } });

// The defaults these bounds follow from (src/config/schema.ts).
const MAX_BYTES = MIB;
const PER_IP_CONNECTIONS = 10;
const PER_IP_PER_MINUTE = 60;

/**
 * What the API may grow by under a flood. The listener holds at most BOUNCE_BUFFER_BYTES (16 MiB)
 * + 100 connections × 64 KiB of mail (22 MiB); reading a mail takes ~7 times its size for a
 * moment, for at most 4 big mails at once (~28 MiB); and freed buffers wait for the GC. Measured:
 * +40 to +140 MiB on a loaded 2-core machine. Before the limits, the flood alone grew it
 * by 1.2 GB.
 */
const MAX_GROWTH = 200 * MIB;

let api: WorkerProcess;
let port: number;

beforeAll(async () => {
  api = startWorkerProcess(t.config, {
    name: 'api',
    entry: 'api',
    startedWhen: '"msg":"bounce listener started"',
    env: { PORT: '0', HOST: '127.0.0.1', BOUNCE_SMTP_PORT: '0', BOUNCE_DOMAIN: DOMAIN },
  });
  await api.started;
  const line = api
    .output()
    .split('\n')
    .find((l) => l.includes('"msg":"bounce listener started"'))!;
  port = (JSON.parse(line) as { port: number }).port;
  // Warm up: the first report loads the parser and warms the pool, which is no growth from the flood.
  for (let i = 0; i < 3; i++) {
    expect(await deliver(`Subject: warm-up ${i}\n\nhello\n`, `bounces@${DOMAIN}`, { port, localAddress: '127.0.0.99' })).toMatchObject({ ok: true });
  }
}, 120_000);

afterAll(async () => {
  await killAllWorkerProcesses();
});

const fixture = readFileSync(new URL('../bounces/fixtures/postfix-user-unknown.eml', import.meta.url), 'utf8');
let sent = 0;

/** A mail of `body` random bytes under a header of its own (so no two are the same bytes). */
const randomMail = (body: Buffer): Readable => Readable.from([Buffer.from(`Subject: flood ${++sent} ${Date.now()}\r\n\r\n`), body]);

type Outcome = { from: string; reply: SmtpReply };

/** `clients` connections from each address, all at once, each sending one mail. */
function flood(addresses: string[], clientsPerAddress: number, body: Buffer): { done: Promise<Outcome[]>; answered: Outcome[] } {
  const all: Promise<Outcome>[] = [];
  const answered: Outcome[] = [];
  for (const from of addresses) {
    for (let i = 0; i < clientsPerAddress; i++) {
      all.push(
        deliver(randomMail(body), `bounces@${DOMAIN}`, { port, localAddress: from, timeoutMs: 120_000 }).then((reply) => {
          answered.push({ from, reply });
          return { from, reply };
        }),
      );
    }
  }
  return { done: Promise.all(all), answered };
}

const codeOf = (o: Outcome): number => (o.reply.ok ? 250 : (o.reply.responseCode ?? 0));
function tally(outcomes: Outcome[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const o of outcomes) out[codeOf(o)] = (out[codeOf(o)] ?? 0) + 1;
  return out;
}

async function storedSince(id: number): Promise<{ reports: number; bytes: number }> {
  const { rows } = await t.c.pool.query<{ reports: number; bytes: string | null }>(
    'SELECT count(*)::int AS reports, sum(size)::bigint AS bytes FROM inbound_reports WHERE id > $1',
    [id],
  );
  return { reports: rows[0]!.reports, bytes: Number(rows[0]!.bytes ?? 0) };
}
const lastReportId = async (): Promise<number> => (await t.c.pool.query<{ id: number | null }>('SELECT max(id) AS id FROM inbound_reports')).rows[0]!.id ?? 0;

describe('bounce listener under a flood (issue 12)', () => {
  it("the issue's flood: 30 clients from one address sending 8.5 MiB of random bytes at once; 10 get in, the others are told 421, every mail is refused 552, nothing is stored", async () => {
    const body = randomBytes(Math.round(8.5 * MIB));
    const before = await lastReportId();
    const memory = watchMemory(api.pid);
    const started = Date.now();
    const outcomes = await flood(['127.0.0.20'], 30, body).done;
    const seconds = (Date.now() - started) / 1000;
    const { peak, end } = memory.stop();
    const stored = await storedSince(before);
    console.log(
      `issue flood (30 × 8.5 MiB from one address): replies ${JSON.stringify(tally(outcomes))} in ${seconds.toFixed(1)} s; ` +
        `API RSS ${mib(memory.baseline)} before, ${mib(peak)} at peak (+${mib(peak - memory.baseline)}), ${mib(end)} after; stored ${stored.reports} reports, ${mib(stored.bytes)}`,
    );

    expect(api.running).toBe(true);
    // All 30 connect in the same instant: 10 are served, 20 told 421 (a little slack for a
    // loaded machine where a served client could finish before a late one connects).
    const codes = tally(outcomes);
    expect(Object.keys(codes).sort()).toEqual(['421', '552']);
    expect(codes[421]).toBeGreaterThanOrEqual(30 - PER_IP_CONNECTIONS - 5);
    expect(codes[552]).toBeGreaterThanOrEqual(PER_IP_CONNECTIONS);
    expect(stored).toEqual({ reports: 0, bytes: 0 });
    expect(peak - memory.baseline).toBeLessThan(MAX_GROWTH);
  }, 180_000);

  it('a wide flood: 84 clients from 6 addresses sending mails just under the size limit at once; memory and storage stay bounded, and an honest DSN sent meanwhile is recorded', async () => {
    const addresses = ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14', '127.0.0.15', '127.0.0.16'];
    const body = randomBytes(MAX_BYTES - 64 * 1024);
    const {
      messages: [m],
    } = await seedSubmittedSend(t, ['honest.reader@readers.test']);
    const before = await lastReportId();
    const memory = watchMemory(api.pid);
    const started = Date.now();

    const flooding = flood(addresses, 14, body);
    // In the middle of it (the first clients over the per-address limit have been told 421,
    // the others are sending), a real MTA's DSN from elsewhere.
    await until('the flood to reach the listener', () => flooding.answered.some((o) => codeOf(o) === 421), 60_000);
    const honestSent = (Date.now() - started) / 1000;
    const honest = await deliver(fixture.split('m2s-0123456789abcdef').join(m!.token), `bounces+${m!.token}@${DOMAIN}`, { port, localAddress: '127.0.0.98' });
    const honestAt = (Date.now() - started) / 1000;
    const floodLeft = addresses.length * 14 - flooding.answered.length;
    const outcomes = await flooding.done;
    const seconds = (Date.now() - started) / 1000;
    const { peak, end } = memory.stop();
    const stored = await storedSince(before);
    console.log(
      `wide flood (6 addresses × 14 clients × ${mib(body.length)}): replies ${JSON.stringify(tally(outcomes))} in ${seconds.toFixed(1)} s; ` +
        `honest DSN sent at ${honestSent.toFixed(1)} s, answered ${honest.ok ? '250' : JSON.stringify(honest)} at ${honestAt.toFixed(1)} s with ${floodLeft} flood mails still unanswered; ` +
        `API RSS ${mib(memory.baseline)} before, ${mib(peak)} at peak (+${mib(peak - memory.baseline)}), ${mib(end)} after; stored ${stored.reports} reports, ${mib(stored.bytes)}`,
    );

    expect(api.running).toBe(true);
    expect(honest).toMatchObject({ ok: true, response: expect.stringMatching(/^250 2\.0\.0 report \d+ stored$/) });
    expect((await subscriberStatus(t, m!.subscriberId)).status).toBe('bounced');
    expect(floodLeft).toBeGreaterThan(0);

    // Every refusal is one a real MTA retries: too many connections (421), memory (452).
    const codes = tally(outcomes);
    expect(Object.keys(codes).map(Number).sort()).toEqual(expect.arrayContaining([250, 421]));
    for (const code of Object.keys(codes).map(Number)) expect([250, 421, 452]).toContain(code);
    for (const from of addresses) {
      const mine = outcomes.filter((o) => o.from === from);
      expect(mine.filter((o) => codeOf(o) === 421).length).toBeGreaterThanOrEqual(14 - PER_IP_CONNECTIONS);
    }
    // Stored: at most what the per-address limits let through (and here, the connections: one
    // mail each), each at most BOUNCE_MAX_BYTES; the memory budget refused what did not fit.
    expect(stored.reports).toBeLessThanOrEqual(addresses.length * PER_IP_CONNECTIONS + 1);
    expect(stored.bytes).toBeLessThanOrEqual(addresses.length * Math.min(PER_IP_CONNECTIONS, PER_IP_PER_MINUTE) * MAX_BYTES);
    expect(codes[250]).toBeGreaterThan(0);
    expect(peak - memory.baseline).toBeLessThan(MAX_GROWTH);

    // And it still answers afterwards.
    expect(await deliver('Subject: after the flood\n\nok\n', `bounces@${DOMAIN}`, { port, localAddress: '127.0.0.97' })).toMatchObject({ ok: true });
  }, 180_000);
});
