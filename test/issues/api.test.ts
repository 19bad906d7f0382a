import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { parseIssueFile } from '../../src/issues/issue-file.js';
import { escapeHtml } from '../../src/web/escape.js';
import { createTestContext, useTestContext, type TestContext } from '../support/context.js';
import { editor, type Issue, type Method } from '../support/editor.js';
import { truncate } from '../support/truncate.js';

const t = useTestContext();
const { api, createIssue: create, publish } = editor(t);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sample = parseIssueFile(readFileSync(path.join(root, 'sample/issue.md'), 'utf8'));
const bench = parseIssueFile(readFileSync(path.join(root, 'bench/issue-30kb.md'), 'utf8'));
/** The `##` headings of a Markdown source, as the editor wrote them. */
const headingsOf = (markdown: string) => [...markdown.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim());

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

type Page = { items: Issue[]; nextCursor: string | null };

/** A JSON body sent as is (inject would otherwise serialise objects itself). */
const raw = (method: Method, url: string, body: string, contentType = 'application/json') =>
  t.app.inject({ method, url, headers: { ...t.auth, 'content-type': contentType }, payload: body });

/** The error envelope, with the status and (when given) the code expected. */
function expectError(res: LightMyRequestResponse, status: number, code?: string): { code: string; message: string; details?: unknown } {
  expect([res.statusCode, res.body]).toEqual([status, expect.any(String)]);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json() as { error: { code: string; message: string; details?: unknown } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toEqual({
    code: code ?? expect.any(String),
    message: expect.any(String),
    ...('details' in body.error ? { details: body.error.details } : {}),
  });
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

async function list(query = ''): Promise<Page> {
  const res = await api('GET', `/api/issues${query}`);
  expect(res.statusCode).toBe(200);
  const body = res.json() as Page;
  expect(Object.keys(body).sort()).toEqual(['items', 'nextCursor']);
  return body;
}

/** Every page of the listing, following nextCursor to the end. */
async function walk(query: string): Promise<{ pages: Page[]; ids: number[] }> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const sep = query ? '&' : '?';
    const page: Page = await list(cursor === null ? query : `${query}${sep}cursor=${cursor}`);
    pages.push(page);
    cursor = page.nextCursor;
  } while (cursor !== null && pages.length < 100);
  return { pages, ids: pages.flatMap((p) => p.items.map((i) => i.id)) };
}

beforeEach(async () => {
  await truncate(t.c.pool, 'issues');
});

describe('POST /api/issues', () => {
  it('creates a draft: 201 with id, slug from the subject, sections, size, warnings and the source; GET returns the same', async () => {
    const res = await api('POST', '/api/issues', sample);
    expect(res.statusCode).toBe(201);
    const issue = res.json() as Issue;
    expect(issue).toEqual({
      id: expect.any(Number),
      slug: 'the-relay-42-deliverability-and-the-50-ms-p99-question',
      subject: sample.subject,
      preheader: sample.preheader,
      status: 'draft',
      state: 'draft',
      scheduledAt: null,
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
      publishedAt: null,
      webUrl: 'http://broadside.test/issues/the-relay-42-deliverability-and-the-50-ms-p99-question',
      sections: expect.any(Array),
      htmlBytes: expect.any(Number),
      warnings: [],
      revision: 1,
      inArchive: false,
      unpublishedAt: null,
      markdown: sample.markdown,
    });
    expect(res.headers.etag).toBe('"1"');
    expect(issue.slug).toMatch(SLUG);
    expect(Number.isInteger(issue.id) && issue.id > 0).toBe(true);

    // One section per "##" heading, in order, each with a distinct anchor id.
    const headings = headingsOf(sample.markdown);
    expect(headings).toHaveLength(7);
    expect(issue.sections.map((s) => s.title)).toEqual(headings);
    for (const s of issue.sections) expect(Object.keys(s).sort()).toEqual(['id', 'title']);
    const ids = issue.sections.map((s) => s.id);
    for (const id of ids) expect(id).toMatch(SLUG);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).not.toContain('covered-this-week');
    expect(ids[0]).toBe('deliverability-and-the-50-ms-p99-question');

    // htmlBytes is the size of the HTML part a reader gets (the preview differs only in the
    // sample reader's values), and a 15 KB issue is well under Gmail's clipping limit.
    const preview = await api('GET', `/api/issues/${issue.id}/preview`);
    expect(preview.statusCode).toBe(200);
    expect(Math.abs(issue.htmlBytes - Buffer.byteLength(preview.body))).toBeLessThan(256);
    expect(issue.htmlBytes).toBeLessThan(102 * 1024);

    const got = await api('GET', `/api/issues/${issue.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(issue);
  });

  it('trims the subject and preheader, and defaults the preheader to empty', async () => {
    const issue = await create({ subject: '  Padded subject \t ', markdown: 'Intro.\n\n## One\n\nText.' });
    expect(issue).toMatchObject({ subject: 'Padded subject', preheader: '', slug: 'padded-subject' });
    const withPre = await create({ subject: 'Pre', preheader: '  Read this first  ', markdown: 'x' });
    expect(withPre.preheader).toBe('Read this first');
  });

  it('warns when the issue has no sections, and when its HTML passes the 102 KB Gmail clips at', async () => {
    const flat = await create({ subject: 'No sections', markdown: 'Just one paragraph, no headings.' });
    expect(flat.sections).toEqual([]);
    expect(flat.warnings).toEqual([expect.stringContaining('no "##" sections')]);

    // ~200 KB of Markdown: above the global 64 KB body limit, accepted on this route.
    const big = bench.markdown.repeat(7);
    expect(Buffer.byteLength(big)).toBeGreaterThan(200 * 1024);
    const large = await create({ subject: 'Seven issues in one', markdown: big });
    expect(large.htmlBytes).toBeGreaterThan(102 * 1024);
    expect(large.warnings).toEqual([expect.stringMatching(/^the HTML is \d+\.\d KB; Gmail clips messages above 102 KB/)]);
    expect(large.sections).toHaveLength(headingsOf(bench.markdown).length * 7);
    // Repeated headings still get distinct ids.
    expect(new Set(large.sections.map((s) => s.id)).size).toBe(large.sections.length);
  });

  it('accepts the 30 KB benchmark issue', async () => {
    expect(Buffer.byteLength(bench.markdown)).toBeGreaterThan(29 * 1024);
    const issue = await create(bench);
    expect(issue.slug).toBe('the-relay-43-one-click-and-the-10-problem-ferrowires-outage');
    expect(issue.sections.map((s) => s.title)).toEqual(headingsOf(bench.markdown));
    expect(issue.warnings).toEqual([]);
    expect(issue.markdown).toBe(bench.markdown);
  });

  it('gives two issues with the same subject distinct slugs: x, then x-2, then x-3', async () => {
    const a = await create({ subject: 'Same old news', markdown: 'a' });
    const b = await create({ subject: 'Same old news', markdown: 'b' });
    const c = await create({ subject: 'SAME old news!', markdown: 'c' });
    expect([a.slug, b.slug, c.slug]).toEqual(['same-old-news', 'same-old-news-2', 'same-old-news-3']);
    // A subject with no letters or digits at all still gets a valid slug.
    const emoji = await create({ subject: '📬 ✉️', markdown: 'd' });
    expect(emoji.slug).toMatch(SLUG);
  });

  it('gives five issues created at once with one subject five distinct slugs', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => api('POST', '/api/issues', { subject: 'Race day', markdown: `Issue ${i}\n\n## Part ${i}` })),
    );
    expect(results.map((r) => r.statusCode)).toEqual([201, 201, 201, 201, 201]);
    const slugs = results.map((r) => (r.json() as Issue).slug);
    expect(new Set(slugs).size).toBe(5);
    expect([...slugs].sort()).toEqual(['race-day', 'race-day-2', 'race-day-3', 'race-day-4', 'race-day-5']);
    const { rows } = await t.c.pool.query<{ n: string }>('SELECT count(*) AS n FROM issues');
    expect(Number(rows[0]!.n)).toBe(5);
  });

  it('answers bad input with 400 and the error envelope, never 500, and stores nothing', async () => {
    const ok = { subject: 'Fine', markdown: 'Fine.' };
    const cases: [string, unknown][] = [
      ['missing subject', { markdown: 'x' }],
      ['missing markdown', { subject: 'x' }],
      ['empty object', {}],
      ['empty subject', { ...ok, subject: '' }],
      ['whitespace subject', { ...ok, subject: ' \t  ' }],
      ['CRLF header injection', { ...ok, subject: 'Hi\r\nBcc: x@y.z' }],
      ['LF in subject', { ...ok, subject: 'Hi\nthere' }],
      ['CR in subject', { ...ok, subject: 'Hi\rthere' }],
      ['tab inside subject', { ...ok, subject: 'Hi\tthere' }],
      ['NUL in subject', { ...ok, subject: 'Hi\u0000there' }],
      ['DEL in subject', { ...ok, subject: 'Hi\u007fthere' }],
      ['ESC in subject', { ...ok, subject: 'Hi\u001b[31m' }],
      ['CRLF in preheader', { ...ok, preheader: 'a\r\nb' }],
      ['subject of 301 characters', { ...ok, subject: 'x'.repeat(301) }],
      ['subject of 301 emoji', { ...ok, subject: '📬'.repeat(301) }],
      ['preheader of 301 characters', { ...ok, preheader: 'p'.repeat(301) }],
      ['empty markdown', { ...ok, markdown: '' }],
      ['whitespace markdown', { ...ok, markdown: ' \n\t\n ' }],
      ['NUL in markdown', { ...ok, markdown: 'before\u0000after' }],
      ['numeric subject', { ...ok, subject: 42 }],
      ['boolean markdown', { ...ok, markdown: true }],
      ['array markdown', { ...ok, markdown: ['x'] }],
      ['object subject', { ...ok, subject: { text: 'x' } }],
      ['null subject', { ...ok, subject: null }],
      ['null preheader', { ...ok, preheader: null }],
      ['array body', [ok]],
      ['string body', 'subject'],
    ];
    for (const [what, body] of cases) {
      const res = await raw('POST', '/api/issues', JSON.stringify(body));
      expect([what, res.statusCode]).toEqual([what, 400]);
      expectError(res, 400);
    }
    // A subject of exactly 300 characters (emoji count as one) is fine.
    expect((await create({ ...ok, subject: '📬'.repeat(300) })).subject).toBe('📬'.repeat(300));
    const { rows } = await t.c.pool.query<{ n: string }>('SELECT count(*) AS n FROM issues');
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('names the field at fault', async () => {
    const inj = expectError(await api('POST', '/api/issues', { subject: 'Hi\r\nBcc: x@y.z', markdown: 'x' }), 400, 'invalid_input');
    expect(inj.message).toMatch(/subject/);
    const nul = expectError(await api('POST', '/api/issues', { subject: 'ok', markdown: 'a\u0000b' }), 400, 'invalid_input');
    expect(nul.message).toMatch(/markdown/);
    const long = expectError(await api('POST', '/api/issues', { subject: 'y'.repeat(301), markdown: 'x' }), 400, 'invalid_input');
    expect(long.message).toMatch(/subject/);
    expect(long.message).toMatch(/300/);
  });

  it('refuses Markdown over 512 KB with 400, counted in bytes, and a body over the route limit with 413', async () => {
    const ascii = expectError(await api('POST', '/api/issues', { subject: 'Too big', markdown: 'a'.repeat(600 * 1024) }), 400, 'invalid_input');
    expect(ascii.message).toMatch(/markdown/);
    // 300 K characters but 600 KB of UTF-8.
    const wide = expectError(await api('POST', '/api/issues', { subject: 'Too big', markdown: 'é'.repeat(300 * 1024) }), 400, 'invalid_input');
    expect(wide.message).toMatch(/markdown must be at most 512 KB/);
    expectError(await api('POST', '/api/issues', { subject: 'Far too big', markdown: 'a'.repeat(2 * 1024 * 1024) }), 413, 'payload_too_large');
    const { rows } = await t.c.pool.query<{ n: string }>('SELECT count(*) AS n FROM issues');
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('refuses malformed JSON (400), other content types (415) and a missing or wrong token (401)', async () => {
    expectError(await raw('POST', '/api/issues', '{"subject": "x", "markdown": '), 400, 'invalid_json');
    expectError(await raw('POST', '/api/issues', ''), 400);
    expectError(await raw('POST', '/api/issues', 'subject: x', 'text/plain'), 415, 'unsupported_media_type');
    expectError(await raw('POST', '/api/issues', '<issue/>', 'application/xml'), 415, 'unsupported_media_type');

    const anonymous = await t.app.inject({ method: 'POST', url: '/api/issues', payload: { subject: 'x', markdown: 'y' } });
    expectError(anonymous, 401, 'unauthorized');
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/api/issues',
      headers: { authorization: 'Bearer not-the-token-at-all' },
      payload: { subject: 'x', markdown: 'y' },
    });
    expectError(wrong, 401, 'unauthorized');
    for (const [method, url] of [
      ['GET', '/api/issues'],
      ['GET', '/api/issues/1'],
      ['PATCH', '/api/issues/1'],
      ['DELETE', '/api/issues/1'],
      ['POST', '/api/issues/1/publish'],
    ] as const) {
      expectError(await t.app.inject({ method, url }), 401, 'unauthorized');
    }
    const { rows } = await t.c.pool.query<{ n: string }>('SELECT count(*) AS n FROM issues');
    expect(Number(rows[0]!.n)).toBe(0);
  });
});

describe('GET /api/issues/:id', () => {
  it('answers 404 for an unknown id and 400 for one that is not a positive integer', async () => {
    expectError(await api('GET', '/api/issues/999999'), 404, 'not_found');
    for (const bad of ['abc', '0', '-1', '1.5', '99999999999999999999', '%00']) {
      const error = expectError(await api('GET', `/api/issues/${bad}`), 400, 'invalid_input');
      expect(error.message).toMatch(/^params\.id /);
    }
  });

  it('answers 400 for an id not written in decimal digits, even one that would name an issue', async () => {
    const issue = await create({ subject: 'Number one', markdown: 'x' });
    expect(issue.id).toBe(1);
    expect((await api('GET', '/api/issues/1')).statusCode).toBe(200);
    for (const bad of ['1e3', '0x10', '1e0', '0x1', '0b1', '1.0', '+1', '%201', '1%20']) {
      const error = expectError(await api('GET', `/api/issues/${bad}`), 400, 'invalid_input');
      expect([bad, error.message]).toEqual([bad, 'params.id must be an integer in decimal digits']);
    }
    // Every route with an id in its path, including those with more in it.
    for (const [method, url] of [
      ['PATCH', '/api/issues/0x1'],
      ['DELETE', '/api/issues/1e0'],
      ['GET', '/api/issues/0x1/preview'],
      ['GET', '/api/issues/0x1/send'],
      ['POST', '/api/issues/1e0/send/pause'],
      ['GET', '/api/subscribers/0x1'],
      ['GET', '/api/bounces/reports/1e3'],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: t.auth, ...(method === 'PATCH' ? { payload: { subject: 'x' } } : {}) });
      expect([method, url, res.statusCode, res.json().error.code]).toEqual([method, url, 400, 'invalid_input']);
    }
    expect((await api('GET', '/api/issues/1')).json()).toMatchObject({ subject: 'Number one', status: 'draft' });
  });
});

describe('GET /api/issues', () => {
  it('lists newest first, pages with nextCursor, and filters by status', async () => {
    const created: Issue[] = [];
    for (let i = 1; i <= 7; i++) created.push(await create({ subject: `Issue number ${i}`, markdown: `Body ${i}\n\n## Part ${i}` }));
    const [i1, i2, , i4, , , i7] = created;
    await publish(i2!.id);
    await publish(i4!.id);
    await publish(i7!.id);
    const newestFirst = created.map((i) => i.id).reverse();

    const first = await list();
    expect(first.items.map((i) => i.id)).toEqual(newestFirst);
    expect(first.nextCursor).toBeNull();
    // Listing items are the detail without the Markdown source.
    const one = first.items.find((i) => i.id === i1!.id)!;
    const { markdown: _source, ...summary } = i1!;
    expect(one).toEqual(summary);

    const paged = await walk('?limit=3');
    expect(paged.pages.map((p) => p.items.length)).toEqual([3, 3, 1]);
    expect(paged.ids).toEqual(newestFirst);
    expect(paged.pages.at(-1)!.nextCursor).toBeNull();
    for (const p of paged.pages.slice(0, -1)) expect(p.nextCursor).toMatch(/^[0-9a-z]+$/);

    // Exactly one page's worth: no cursor to an empty page.
    const exact = await list('?limit=7');
    expect(exact.items).toHaveLength(7);
    expect(exact.nextCursor).toBeNull();

    const drafts = await walk('?status=draft&limit=2');
    expect(drafts.ids).toEqual(newestFirst.filter((id) => ![i2!.id, i4!.id, i7!.id].includes(id)));
    expect(drafts.pages.flatMap((p) => p.items).every((i) => i.status === 'draft' && i.publishedAt === null)).toBe(true);
    const published = await walk('?status=published&limit=2');
    expect(published.ids).toEqual([i7!.id, i4!.id, i2!.id]);
    expect(published.pages.flatMap((p) => p.items).every((i) => i.status === 'published' && ISO.test(i.publishedAt ?? ''))).toBe(true);

    for (const bad of ['status=sent', 'limit=0', 'limit=201', 'limit=x', 'cursor=-1', 'cursor=%2A', 'cursor=', 'cursor=%00']) {
      const res = await api('GET', `/api/issues?${bad}`);
      expect([bad, res.statusCode]).toEqual([bad, 400]);
      expectError(res, 400);
    }
  });

  it('answers 400 naming the cursor for a cursor this list never gave, not an empty page', async () => {
    for (let i = 1; i <= 3; i++) await create({ subject: `Cursor ${i}`, markdown: 'x' });
    // Past 2^53, zero, a leading zero: well-formed base 36, but no nextCursor is ever one of them.
    for (const foreign of ['zzzzzzzzzzzz', '0', '01']) {
      const error = expectError(await api('GET', `/api/issues?cursor=${foreign}`), 400, 'invalid_input');
      expect([foreign, error.message, error.details]).toEqual([foreign, expect.stringContaining(`cursor "${foreign}"`), { field: 'cursor' }]);
    }
    // A cursor this list could give, past every issue: an empty last page.
    expect(await list('?cursor=1')).toEqual({ items: [], nextCursor: null });
  });
});

describe('PATCH /api/issues/:id, publish and DELETE', () => {
  it('edits a draft: the slug follows the subject, sections follow the Markdown, the preheader changes alone', async () => {
    const draft = await create({ subject: 'First thoughts', markdown: 'Hello.\n\n## Alpha\n\nA.\n\n## Beta\n\nB.' });
    expect(draft.sections.map((s) => s.title)).toEqual(['Alpha', 'Beta']);

    const renamed = await api('PATCH', `/api/issues/${draft.id}`, { subject: 'Second thoughts & more' });
    expect(renamed.statusCode).toBe(200);
    const r = renamed.json() as Issue;
    expect(r).toMatchObject({
      id: draft.id,
      subject: 'Second thoughts & more',
      slug: 'second-thoughts-and-more',
      status: 'draft',
      markdown: draft.markdown,
      sections: draft.sections,
    });
    expect(r.webUrl).toBe('http://broadside.test/issues/second-thoughts-and-more');
    expect(r.createdAt).toBe(draft.createdAt);
    expect(Date.parse(r.updatedAt)).toBeGreaterThanOrEqual(Date.parse(draft.updatedAt));

    const remade = await api('PATCH', `/api/issues/${draft.id}`, { markdown: 'Hello again.\n\n## Gamma & Delta\n\nG.\n\n## Epsilon\n\n## Zeta\n\nZ.' });
    expect(remade.statusCode).toBe(200);
    expect(remade.json()).toMatchObject({ slug: 'second-thoughts-and-more', sections: [{ title: 'Gamma & Delta' }, { title: 'Epsilon' }, { title: 'Zeta' }] });
    expect((remade.json() as Issue).sections[0]!.id).toBe('gamma-and-delta');

    const pre = await api('PATCH', `/api/issues/${draft.id}`, { preheader: 'A short teaser' });
    expect(pre.statusCode).toBe(200);
    expect(pre.json()).toMatchObject({ preheader: 'A short teaser', subject: 'Second thoughts & more', slug: 'second-thoughts-and-more' });
    const preview = await api('GET', `/api/issues/${draft.id}/preview`);
    expect(preview.body).toContain('A short teaser');
    expect(preview.body).toContain('Gamma &amp; Delta');
    expect(preview.body).not.toContain('Alpha');

    const got = (await api('GET', `/api/issues/${draft.id}`)).json() as Issue;
    expect(got).toMatchObject({ subject: 'Second thoughts & more', preheader: 'A short teaser', markdown: expect.stringContaining('Gamma & Delta') });
  });

  it('keeps the slug when the subject keeps its slug, and avoids the slugs of other issues', async () => {
    const other = await create({ subject: 'Taken name', markdown: 'x' });
    const mine = await create({ subject: 'Mine', markdown: 'y' });
    const same = (await api('PATCH', `/api/issues/${mine.id}`, { subject: 'MINE' })).json() as Issue;
    expect(same.slug).toBe('mine');
    const clash = (await api('PATCH', `/api/issues/${mine.id}`, { subject: 'Taken name' })).json() as Issue;
    expect(clash.slug).toBe('taken-name-2');
    expect(((await api('GET', `/api/issues/${other.id}`)).json() as Issue).slug).toBe('taken-name');
  });

  it('refuses an empty or invalid patch with 400 and leaves the draft as it was', async () => {
    const draft = await create({ subject: 'Stable', markdown: 'Body.\n\n## One' });
    const before = (await api('GET', `/api/issues/${draft.id}`)).json();
    expectError(await api('PATCH', `/api/issues/${draft.id}`, {}), 400, 'invalid_input');
    for (const body of [
      { subject: '' },
      { subject: '   ' },
      { subject: 'Hi\r\nBcc: x@y.z' },
      { subject: 7 },
      { markdown: '' },
      { markdown: 'a\u0000b' },
      { preheader: 'a\nb' },
      { subject: 'z'.repeat(301) },
    ]) {
      const res = await api('PATCH', `/api/issues/${draft.id}`, body);
      expect([JSON.stringify(body), res.statusCode]).toEqual([JSON.stringify(body), 400]);
      expectError(res, 400);
    }
    expectError(await raw('PATCH', `/api/issues/${draft.id}`, '{"subject":'), 400, 'invalid_json');
    expectError(await raw('PATCH', `/api/issues/${draft.id}`, 'subject=x', 'text/plain'), 415);
    expectError(await api('PATCH', '/api/issues/999999', { subject: 'x' }), 404, 'not_found');
    expectError(await api('PATCH', '/api/issues/abc', { subject: 'x' }), 400);
    expect((await api('GET', `/api/issues/${draft.id}`)).json()).toEqual(before);
  });

  it('publishes once; a published issue cannot be deleted (409 not_draft) or published again (409 already_published)', async () => {
    const draft = await create({ subject: 'Going out', markdown: 'Body.\n\n## One' });
    const res = await api('POST', `/api/issues/${draft.id}/publish`);
    expect(res.statusCode).toBe(200);
    const published = res.json() as Issue;
    expect(published).toMatchObject({ id: draft.id, slug: 'going-out', status: 'published', publishedAt: expect.stringMatching(ISO) });
    expect(published).not.toHaveProperty('markdown');

    expect(published).toMatchObject({ inArchive: true, unpublishedAt: null, revision: 1 });
    expectError(await api('DELETE', `/api/issues/${draft.id}`), 409, 'not_draft');
    expectError(await api('POST', `/api/issues/${draft.id}/publish`), 409, 'already_published');

    const after = (await api('GET', `/api/issues/${draft.id}`)).json() as Issue;
    expect(after).toMatchObject({
      subject: 'Going out',
      slug: 'going-out',
      markdown: 'Body.\n\n## One',
      status: 'published',
      publishedAt: published.publishedAt,
    });
    expectError(await api('POST', '/api/issues/999999/publish'), 404, 'not_found');
  });

  it('deletes a draft: 204 with no body, then 404 everywhere', async () => {
    const keep = await create({ subject: 'Keep me', markdown: 'k' });
    const draft = await create({ subject: 'Throwaway', markdown: 'x' });
    const del = await api('DELETE', `/api/issues/${draft.id}`);
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    expectError(await api('GET', `/api/issues/${draft.id}`), 404, 'not_found');
    expectError(await api('DELETE', `/api/issues/${draft.id}`), 404, 'not_found');
    expectError(await api('PATCH', `/api/issues/${draft.id}`, { subject: 'Back' }), 404, 'not_found');
    expectError(await api('POST', `/api/issues/${draft.id}/publish`), 404, 'not_found');
    expectError(await api('GET', `/api/issues/${draft.id}/preview`), 404, 'not_found');
    expect((await list()).items.map((i) => i.id)).toEqual([keep.id]);
    // Its slug is free again.
    expect((await create({ subject: 'Throwaway', markdown: 'y' })).slug).toBe('throwaway');
  });
});

describe('GET /api/issues/:id/preview', () => {
  const awkward = `Tom & Jerry's "best" | <50 ms 📬 — café`;
  const markdown = [
    'Intro with <script>alert(1)</script> inline and **bold** text.',
    '',
    '<script>alert(2)</script>',
    '',
    `## ${awkward}`,
    '',
    'First section. <img src="x" onerror="alert(3)"> [a link](javascript:alert(4)).',
    '',
    '## Zürich «notes» & <b>more</b>',
    '',
    'Second section with {{unsubscribe_url}} typed by the editor.',
    '',
    '## Plain one',
    '',
    '- item',
  ].join('\n');

  let issue: Issue;
  beforeEach(async () => {
    issue = await create({ subject: `Preview: ${awkward}`, markdown });
  });

  it('is the HTML a reader gets, personalised for a sample reader, with a CSP and every heading escaped', async () => {
    expect(issue.sections.map((s) => s.title)).toEqual([awkward, 'Zürich «notes» & more', 'Plain one']);
    const res = await api('GET', `/api/issues/${issue.id}/preview`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');

    const body = res.body;
    expect(body).toMatch(/^<!doctype html>/i);
    expect(body).toContain('Tom &amp; Jerry');
    expect(body).toContain('&lt;50 ms 📬 — café');
    expect(body).not.toContain('Tom & Jerry');
    expect(body).not.toContain('<50 ms');
    for (const s of issue.sections) {
      // The table of contents links to each section, whose heading carries the id.
      expect(body).toContain(`<a href="#${s.id}">${escapeHtml(s.title)}</a>`);
      expect(body).toMatch(new RegExp(`<h2 id="${s.id}"[ >]`));
    }
    expect(body).toMatch(new RegExp(`<h1[^>]*>${escapeRegExp(`Preview: ${escapeHtml(awkward)}`)}</h1>`));
    expect(body).toContain(`<title>Preview: ${escapeHtml(awkward)}</title>`);
    expect(body).not.toMatch(/<script/i);
    expect(body).not.toMatch(/alert\([1-3]\)/);
    expect(body).not.toMatch(/onerror|href="javascript:/i);

    // The sample reader's personalisation, and nothing left unfilled.
    expect(body).toContain('Hi Sample Reader,');
    expect(body).toContain('The Test Letter');
    expect(body).toContain('http://broadside.test/unsubscribe/sample');
    expect(body).toContain('http://broadside.test/manage/sample');
    expect(body).toContain('1 Test Street, Testville');
    expect(body).toContain(`href="http://broadside.test/issues/${issue.slug}"`);
    expect(body).not.toContain('{{');
    // What the editor typed in braces stays text, not a slot.
    expect(body).toContain('&#123;&#123;unsubscribe_url&#125;&#125;');
  });

  it('?format=text is the text part, with the headings verbatim', async () => {
    const res = await api('GET', `/api/issues/${issue.id}/preview?format=text`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    const text = res.body;
    for (const s of issue.sections) expect(text).toContain(`\n${s.title}\n${'-'.repeat([...s.title].length)}\n`);
    expect(text).toContain(`Preview: ${awkward}`);
    expect(text).toContain('Hi Sample Reader,');
    expect(text).toContain('Unsubscribe: http://broadside.test/unsubscribe/sample');
    expect(text).not.toMatch(/<script|alert\([1-3]\)|&amp;|&lt;|&#/);
    // Editor-typed braces are text; no slot of the template is left unfilled.
    expect(text).toContain('{{unsubscribe_url}} typed by the editor');
    expect(text).not.toMatch(/\{\{\s*(newsletter|issue_date|greeting|manage_url|postal_address)\s*\}\}/);
    expect(text.match(/\{\{/g)).toHaveLength(1);

    expectError(await api('GET', `/api/issues/${issue.id}/preview?format=pdf`), 400);
    const html = await api('GET', `/api/issues/${issue.id}/preview?format=html`);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('shows every section of the sample issue in both parts', async () => {
    const s = await create(sample);
    const html = (await api('GET', `/api/issues/${s.id}/preview`)).body;
    const text = (await api('GET', `/api/issues/${s.id}/preview?format=text`)).body;
    expect(s.sections).toHaveLength(7);
    for (const sec of s.sections) {
      expect(html).toMatch(new RegExp(`<h2 id="${sec.id}"[ >]`));
      expect(html).toContain(`<a href="#${sec.id}">${escapeHtml(sec.title)}</a>`);
      expect(text).toContain(sec.title);
    }
    expect(html).not.toContain('{{');
  });

  it('answers 404 for an unknown issue and 401 without the token', async () => {
    expectError(await api('GET', '/api/issues/999999/preview'), 404, 'not_found');
    expectError(await api('GET', '/api/issues/abc/preview'), 400);
    const anonymous = await t.app.inject({ method: 'GET', url: `/api/issues/${issue.id}/preview` });
    expectError(anonymous, 401, 'unauthorized');
    expect(anonymous.body).not.toContain('Tom');
  });
});

describe('an issue template MJML rejects', () => {
  // A copy of emails/ whose issue template uses an attribute MJML's strict validation refuses.
  let dir: string;
  let broken: TestContext;
  let brokenLine: number;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'broadside-emails-'));
    cpSync(path.join(root, 'emails'), dir, { recursive: true });
    const file = path.join(dir, 'issue.mjml');
    const source = readFileSync(file, 'utf8');
    const marker = '<mj-text font-size="13px"';
    expect(source).toContain(marker);
    brokenLine = source.slice(0, source.indexOf(marker)).split('\n').length;
    writeFileSync(file, source.replace(marker, '<mj-text bogus-attribute="1" font-size="13px"'));
    broken = await createTestContext({ env: { EMAILS_DIR: dir } });
  });
  afterAll(async () => {
    await broken?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('still starts, and serves everything but issue compilation', async () => {
    const res = await broken.app.inject({ method: 'GET', url: '/api/issues', headers: broken.auth });
    expect(res.statusCode).toBe(200);
  });

  // MJML 5 in strict mode throws (a ValidationError listing the problems) rather than returning
  // them in `errors`: compileMjml must turn that into the editor's 400, not a 500.
  it('answers POST /api/issues with 400 invalid_mjml naming the tag and the line', async () => {
    const res = await broken.app.inject({
      method: 'POST',
      url: '/api/issues',
      headers: broken.auth,
      payload: { subject: 'Broken template', markdown: 'Hi.\n\n## One' },
    });
    expect(res.statusCode).toBe(400);
    const error = (res.json() as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('invalid_mjml');
    expect(error.message).toContain('mj-text');
    expect(error.message).toContain(`line ${brokenLine}`);
    expect(error.message).toContain('bogus-attribute');
    const { rows } = await broken.c.pool.query<{ n: string }>('SELECT count(*) AS n FROM issues');
    expect(Number(rows[0]!.n)).toBe(0);
  });
});
