import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/api/app.js';
import { createContainer, type Container } from '../../src/container.js';
import { FRESH_MS } from '../../src/issues/public-archive.js';
import { useTestContext } from '../support/context.js';
import { editor, until, type Issue } from '../support/editor.js';
import { truncate } from '../support/truncate.js';

// The public pages served from what a change prepared (issue 16, item 4): validators and 304s,
// a change seen at once by the process that made it and within FRESH_MS by another process on
// the same database, unpublish's 410, and never a draft.
const t = useTestContext();
const { api, createIssue, publish } = editor(t);

/** A second API process behind the same load balancer: its own container (and archive), the same database. */
let other: { c: Container; app: FastifyInstance };

beforeAll(async () => {
  const c = await createContainer(t.config, { log: pino({ level: 'silent' }) });
  other = { c, app: await buildApp(c) };
});

afterAll(async () => {
  await other.app.close();
  await other.c.close();
});

beforeEach(async () => {
  await truncate(t.c.pool, 'issues');
  // Direct SQL, not the editor API: this process is told, as a worker's change is not.
  t.c.archive.changed();
  other.c.archive.changed();
});

const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });
const asJson = (app: FastifyInstance, url: string) => get(app, url, { accept: 'application/json' });
const subjectOf = async (app: FastifyInstance, slug: string) => {
  const res = await asJson(app, `/issues/${slug}`);
  return res.statusCode === 200 ? (res.json() as { subject: string }).subject : res.statusCode;
};
const correct = async (id: number, subject: string) => {
  const res = await api('PATCH', `/api/issues/${id}`, { subject, markdown: `Corrected: ${subject}.\n\n## Section\n\nText.` });
  expect([res.statusCode, res.body]).toEqual([200, expect.any(String)]);
};
const published = async (subject: string): Promise<Issue> => publish((await createIssue(subject)).id);

function validators(res: LightMyRequestResponse): { etag: string; lastModified: string } {
  expect(res.statusCode).toBe(200);
  const etag = String(res.headers.etag);
  const lastModified = String(res.headers['last-modified']);
  expect(etag).toMatch(/^"[\w-]{20,}"$/);
  expect(new Date(lastModified).toUTCString()).toBe(lastModified);
  return { etag, lastModified };
}

describe('validators and 304', () => {
  it('gives the web version (page and JSON), the archive list and the feed an ETag and a Last-Modified, and answers 304 to either', async () => {
    const issue = await published('Validators');
    for (const [url, headers] of [
      [`/issues/${issue.slug}`, { accept: 'text/html' }],
      [`/issues/${issue.slug}`, { accept: 'application/json' }],
      ['/issues', { accept: 'text/html' }],
      ['/issues', { accept: 'application/json' }],
      ['/feed.xml', {}],
    ] as const) {
      const first = await get(t.app, url, headers);
      const { etag, lastModified } = validators(first);
      expect(first.headers['cache-control']).toBe('public, no-cache');
      // Every process prepares the same bytes, so another process answers 304 to this tag too.
      for (const app of [t.app, other.app]) {
        const again = await get(app, url, { ...headers, 'if-none-match': etag });
        expect([url, again.statusCode, again.body, again.headers.etag]).toEqual([url, 304, '', etag]);
      }
      expect((await get(t.app, url, { ...headers, 'if-none-match': `W/${etag}, "other"` })).statusCode).toBe(304);
      expect((await get(t.app, url, { ...headers, 'if-modified-since': lastModified })).statusCode).toBe(304);
      // An older copy, or another tag: the whole answer.
      const before = new Date(Date.parse(lastModified) - 1000).toUTCString();
      expect((await get(t.app, url, { ...headers, 'if-modified-since': before })).statusCode).toBe(200);
      const stale = await get(t.app, url, { ...headers, 'if-none-match': '"not-this-one"', 'if-modified-since': lastModified });
      expect([stale.statusCode, stale.body]).toEqual([200, first.body]);
    }
    // Two forms of one address: two tags, and caches told that Accept chooses.
    const page = await get(t.app, `/issues/${issue.slug}`, { accept: 'text/html' });
    const json = await asJson(t.app, `/issues/${issue.slug}`);
    expect(page.headers.etag).not.toBe(json.headers.etag);
    expect([page.headers.vary, json.headers.vary]).toEqual(['Accept, Accept-Encoding', 'Accept, Accept-Encoding']);
  });

  it('serves the gzipped bytes prepared with the page to a client that takes gzip, under a tag of their own', async () => {
    const issue = await published('Compressed');
    for (const url of [`/issues/${issue.slug}`, '/issues', '/feed.xml']) {
      const plain = await get(t.app, url);
      const zipped = await get(t.app, url, { 'accept-encoding': 'gzip, deflate, br' });
      expect([zipped.statusCode, zipped.headers['content-encoding']]).toEqual([200, 'gzip']);
      expect(gunzipSync(zipped.rawPayload).toString('utf8')).toBe(plain.body);
      expect(zipped.rawPayload.length).toBeLessThan(plain.rawPayload.length / 2);
      expect(zipped.headers.etag).not.toBe(plain.headers.etag);
      expect(String(zipped.headers.vary)).toMatch(/Accept-Encoding/);
      expect((await get(t.app, url, { 'accept-encoding': 'gzip', 'if-none-match': String(zipped.headers.etag) })).statusCode).toBe(304);
      // The identity copy's tag does not stand for the gzipped bytes, nor the other way round.
      expect((await get(t.app, url, { 'accept-encoding': 'gzip', 'if-none-match': String(plain.headers.etag) })).statusCode).toBe(200);
      expect((await get(t.app, url, { 'if-none-match': String(zipped.headers.etag) })).statusCode).toBe(200);
      expect((await get(t.app, url, { 'accept-encoding': 'gzip;q=0, br' })).headers['content-encoding']).toBeUndefined();
    }
  });
});

describe('changes', () => {
  it('shows a correction at once in the process that made it, and within a second in another', async () => {
    const issue = await published('Before the correction');
    // Both processes have prepared the page, the list and the feed.
    for (const app of [t.app, other.app]) {
      expect(await subjectOf(app, issue.slug)).toBe('Before the correction');
      expect((await get(app, '/feed.xml')).body).toContain('Before the correction');
      expect((await get(app, '/issues')).body).toContain('Before the correction');
    }
    const oldTag = String((await asJson(t.app, `/issues/${issue.slug}`)).headers.etag);

    await correct(issue.id, 'After the correction');
    const changedAt = Date.now();
    // This process: at once, every form, and the old copy is no longer "not modified".
    expect(await subjectOf(t.app, issue.slug)).toBe('After the correction');
    expect((await get(t.app, `/issues/${issue.slug}`)).body).toContain('Corrected: After the correction.');
    expect((await get(t.app, '/feed.xml')).body).toContain('After the correction');
    expect((await get(t.app, '/issues')).body).toContain('After the correction');
    const revalidated = await get(t.app, `/issues/${issue.slug}`, { accept: 'application/json', 'if-none-match': oldTag });
    expect(revalidated.statusCode).toBe(200);

    // The other process: within FRESH_MS of the change (plus one statement and the polling step).
    await until('the other process to serve the correction', async () => (await subjectOf(other.app, issue.slug)) === 'After the correction', 5000);
    expect(Date.now() - changedAt).toBeLessThan(FRESH_MS + 500);
    expect((await get(other.app, '/feed.xml')).body).toContain('After the correction');
    expect((await get(other.app, '/issues')).body).not.toContain('Before the correction');
  });

  it('answers 410 at once after an unpublish (and in another process within a second), drops it from list and feed, and serves it again after a republish', async () => {
    const issue = await published('To be withdrawn');
    for (const app of [t.app, other.app]) expect(await subjectOf(app, issue.slug)).toBe('To be withdrawn');

    expect((await api('POST', `/api/issues/${issue.id}/unpublish`)).statusCode).toBe(200);
    const changedAt = Date.now();
    expect((await asJson(t.app, `/issues/${issue.slug}`)).statusCode).toBe(410);
    const page = await get(t.app, `/issues/${issue.slug}`, { accept: 'text/html' });
    expect([page.statusCode, page.headers.etag]).toEqual([410, undefined]);
    expect((await get(t.app, '/feed.xml')).body).not.toContain('To be withdrawn');
    expect((await get(t.app, '/issues')).body).not.toContain('To be withdrawn');

    await until('the other process to answer 410', async () => (await subjectOf(other.app, issue.slug)) === 410, 5000);
    expect(Date.now() - changedAt).toBeLessThan(FRESH_MS + 500);
    expect((await get(other.app, '/feed.xml')).body).not.toContain('To be withdrawn');

    await publish(issue.id);
    expect(await subjectOf(t.app, issue.slug)).toBe('To be withdrawn');
  });

  it('sees a change made outside the API (a worker starting a scheduled send, SQL) within a second, in this process too', async () => {
    const issue = await published('Changed by someone else');
    expect(await subjectOf(t.app, issue.slug)).toBe('Changed by someone else');
    await t.c.pool.query(`UPDATE issues SET subject = 'Changed in SQL', revision = revision + 1, updated_at = now() WHERE id = $1`, [issue.id]);
    const changedAt = Date.now();
    await until('this process to serve the change', async () => (await subjectOf(t.app, issue.slug)) === 'Changed in SQL', 5000);
    expect(Date.now() - changedAt).toBeLessThan(FRESH_MS + 500);
  });
});

describe('drafts', () => {
  it('never serves a draft, before or after the archive was prepared, and a published issue taken back is 410, not its draft', async () => {
    const draft = await createIssue('Still a draft');
    const live = await published('Already live');
    // Prepared: the list, the feed and the live issue's page.
    expect(await subjectOf(t.app, live.slug)).toBe('Already live');
    expect((await get(t.app, '/feed.xml')).statusCode).toBe(200);

    expect(await subjectOf(t.app, draft.slug)).toBe(404);
    expect((await get(t.app, `/issues/${draft.slug}`, { accept: 'text/html' })).statusCode).toBe(404);
    for (const url of ['/issues', '/feed.xml']) expect((await get(t.app, url)).body).not.toContain('Still a draft');

    // A draft edited while the archive is prepared: still nowhere.
    expect((await api('PATCH', `/api/issues/${draft.id}`, { markdown: 'Edited draft.' })).statusCode).toBe(200);
    expect(await subjectOf(t.app, draft.slug)).toBe(404);

    // Unpublished and never sent: a draft again, whose old address says 410 and shows nothing of it.
    expect((await api('POST', `/api/issues/${live.id}/unpublish`)).statusCode).toBe(200);
    expect((await api('PATCH', `/api/issues/${live.id}`, { markdown: 'Secret new draft text.' })).statusCode).toBe(200);
    const gone = await get(t.app, `/issues/${live.slug}`, { accept: 'text/html' });
    expect(gone.statusCode).toBe(410);
    expect(gone.body).not.toContain('Secret new draft text');
    // Deleted: no issue at all any more.
    expect((await api('DELETE', `/api/issues/${live.id}`)).statusCode).toBe(204);
    expect(await subjectOf(t.app, live.slug)).toBe(404);
  });
});
