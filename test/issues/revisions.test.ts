import { beforeEach, describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { useTestContext } from '../support/context.js';
import { editor, workersIdle, type Issue } from '../support/editor.js';
import { addActiveReaders } from '../support/readers.js';
import { truncate } from '../support/truncate.js';

// Revisions, corrections and unpublish (issue 14, item 4). The worker runs, so that a sent issue
// is one whose send really mailed readers.
const t = useTestContext({ worker: true });
const { api, createIssue, publish, trigger, waitForStatus } = editor(t);

type Saved = Issue & { markdown: string; correction: { mailAlreadySent: boolean } | null };
type Revision = { number: number; kind: 'draft' | 'correction'; subject: string; preheader: string; markdownBytes: number; createdAt: string };
type RevisionPage = { items: Revision[]; nextCursor: string | null };

const patch = (id: number, body: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'PATCH', url: `/api/issues/${id}`, headers: { ...t.auth, ...headers }, payload: body as object });

function expectError(res: LightMyRequestResponse, status: number, code: string): { code: string; message: string; details?: unknown } {
  expect([res.statusCode, res.headers['content-type']]).toEqual([status, expect.stringMatching(/^application\/json/)]);
  const { error } = res.json() as { error: { code: string; message: string; details?: unknown } };
  expect(error).toMatchObject({ code, message: expect.any(String) });
  return error;
}

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  expect([res.statusCode, res.body]).toEqual([status, expect.any(String)]);
  return res.json() as T;
}

const get = async (id: number) => ok<Issue & { markdown: string }>(await api('GET', `/api/issues/${id}`));
const revisions = async (id: number, query = '') => ok<RevisionPage>(await api('GET', `/api/issues/${id}/revisions${query}`));

const asJson = (url: string) => t.app.inject({ method: 'GET', url, headers: { accept: 'application/json' } });
const asBrowser = (url: string) => t.app.inject({ method: 'GET', url, headers: { accept: 'text/html' } });
const archiveSlugs = async () => ((await asJson('/issues')).json() as { items: { slug: string }[] }).items.map((i) => i.slug);
const feed = async () => (await t.app.inject({ method: 'GET', url: '/feed.xml' })).body;

beforeEach(async () => {
  await truncate(t.c.pool, 'issues, sends, messages');
});

describe('every save keeps a revision', () => {
  it('create is revision 1; each PATCH that changes something adds one; GET carries the revision as ETag', async () => {
    const draft = await createIssue({ subject: 'Week one', markdown: 'First words.', preheader: 'pre' });
    expect(draft.revision).toBe(1);
    const res1 = await api('GET', `/api/issues/${draft.id}`);
    expect(res1.headers.etag).toBe('"1"');

    const s2 = await patch(draft.id, { markdown: 'Second words.' });
    expect(ok<Saved>(s2)).toMatchObject({ revision: 2, markdown: 'Second words.', correction: null, status: 'draft' });
    expect(s2.headers.etag).toBe('"2"');
    expect(ok<Saved>(await patch(draft.id, { subject: 'Week one, again' }))).toMatchObject({ revision: 3, slug: 'week-one-again' });

    // Nothing changed, nothing saved.
    const same = ok<Saved>(await patch(draft.id, { subject: 'Week one, again', markdown: 'Second words.' }));
    expect(same.revision).toBe(3);

    const page = await revisions(draft.id);
    expect(page.nextCursor).toBeNull();
    expect(page.items.map((r) => [r.number, r.kind, r.subject])).toEqual([
      [3, 'draft', 'Week one, again'],
      [2, 'draft', 'Week one'],
      [1, 'draft', 'Week one'],
    ]);
    expect(page.items[2]).toEqual({ number: 1, kind: 'draft', subject: 'Week one', preheader: 'pre', markdownBytes: 12, createdAt: expect.any(String) });

    // Each revision's Markdown, as it was written then.
    expect(ok<Revision & { markdown: string }>(await api('GET', `/api/issues/${draft.id}/revisions/1`))).toMatchObject({ number: 1, markdown: 'First words.' });
    expect(ok<Revision & { markdown: string }>(await api('GET', `/api/issues/${draft.id}/revisions/2`)).markdown).toBe('Second words.');
    expectError(await api('GET', `/api/issues/${draft.id}/revisions/4`), 404, 'not_found');
    expectError(await api('GET', '/api/issues/999999/revisions'), 404, 'not_found');
    expectError(await api('GET', `/api/issues/${draft.id}/revisions/0`), 400, 'invalid_input');
  });

  it('pages the revisions newest first with a cursor, none missed or repeated', async () => {
    const draft = await createIssue('Many saves');
    for (let i = 2; i <= 7; i++) ok(await patch(draft.id, { markdown: `Version ${i}.` }));
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: RevisionPage = await revisions(draft.id, `?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((r) => r.number));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expectError(await api('GET', `/api/issues/${draft.id}/revisions?cursor=00`), 400, 'invalid_input');
  });

  it('keeps the revisions of an issue only while the issue exists (deleted with the draft)', async () => {
    const draft = await createIssue('Short lived');
    ok(await patch(draft.id, { markdown: 'again' }));
    expect((await api('DELETE', `/api/issues/${draft.id}`)).statusCode).toBe(204);
    const { rows } = await t.c.pool.query('SELECT count(*)::int AS n FROM issue_revisions WHERE issue_id = $1', [draft.id]);
    expect(rows[0].n).toBe(0);
  });
});

describe('a save based on an older revision is an edit_conflict', () => {
  it('two tabs open revision 1: the first save wins, the second answers 409 with the current revision and changes nothing', async () => {
    const draft = await createIssue('Two tabs');
    const tabA = await get(draft.id);
    const tabB = await get(draft.id);
    expect([tabA.revision, tabB.revision]).toEqual([1, 1]);

    ok(await patch(draft.id, { markdown: 'From tab A.' }, { 'if-match': `"${tabA.revision}"` }));
    const err = expectError(await patch(draft.id, { markdown: 'From tab B.' }, { 'if-match': `"${tabB.revision}"` }), 409, 'edit_conflict');
    expect(err.details).toEqual({ basedOn: 1, revision: 2 });
    // The same with the revision in the body.
    expect(expectError(await patch(draft.id, { markdown: 'From tab B.', revision: 1 }), 409, 'edit_conflict').details).toEqual({ basedOn: 1, revision: 2 });
    expect(await get(draft.id)).toMatchObject({ revision: 2, markdown: 'From tab A.' });

    // Tab B reloads and saves on top of revision 2; a weak tag is read the same way.
    ok(await patch(draft.id, { markdown: 'From tab B, after reloading.' }, { 'if-match': 'W/"2"' }));
    expect(ok<Saved>(await patch(draft.id, { markdown: 'Tab B again.', revision: 3 }))).toMatchObject({ revision: 4 });
    expect((await revisions(draft.id)).items).toHaveLength(4);
  });

  it('two saves based on one revision at the same moment: exactly one wins, the other is an edit_conflict, one revision is added', async () => {
    const draft = await createIssue('Racing tabs');
    for (let round = 0; round < 5; round++) {
      const { revision } = await get(draft.id);
      const results = await Promise.all(['left', 'right'].map((tab) => patch(draft.id, { markdown: `${tab} ${round}` }, { 'if-match': `"${revision}"` })));
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
      const winner = results.find((r) => r.statusCode === 200)!.json() as Saved;
      expect(await get(draft.id)).toMatchObject({ revision: revision + 1, markdown: winner.markdown });
    }
    expect((await revisions(draft.id)).items.map((r) => r.number)).toEqual([6, 5, 4, 3, 2, 1]);
  });

  it('without If-Match or revision the change applies to the current revision; "*" names none', async () => {
    const draft = await createIssue('No tag');
    ok(await patch(draft.id, { markdown: 'one' }));
    expect(ok<Saved>(await patch(draft.id, { markdown: 'two' })).revision).toBe(3);
    expect(ok<Saved>(await patch(draft.id, { markdown: 'three' }, { 'if-match': '*' })).revision).toBe(4);
  });

  it('refuses an If-Match that is no revision, or that disagrees with the body (400), before saving anything', async () => {
    const draft = await createIssue('Bad tags');
    expectError(await patch(draft.id, { markdown: 'x' }, { 'if-match': '1' }), 400, 'invalid_input');
    expectError(await patch(draft.id, { markdown: 'x' }, { 'if-match': '"abc"' }), 400, 'invalid_input');
    expectError(await patch(draft.id, { markdown: 'x' }, { 'if-match': '"1", "2"' }), 400, 'invalid_input');
    expectError(await patch(draft.id, { markdown: 'x', revision: 2 }, { 'if-match': '"1"' }), 400, 'invalid_input');
    expectError(await patch(draft.id, { markdown: 'x', revision: 0 }), 400, 'invalid_input');
    expect((await get(draft.id)).revision).toBe(1);
  });
});

describe('corrections after publishing', () => {
  it('corrects a published issue: same slug, new revision of kind correction, and the web version, archive and feed change', async () => {
    const draft = await createIssue({ subject: 'Typo in here', markdown: 'Teh intro.\n\n## Part one\n\nBody.', preheader: 'old pre' });
    await publish(draft.id);
    const web0 = (await asJson(`/issues/${draft.slug}`)).json() as { html: string };
    expect(web0.html).toContain('Teh intro.');

    const res = await patch(draft.id, { subject: 'No typo in here', markdown: 'The intro.\n\n## Part one\n\nBody.', preheader: 'new pre', revision: 1 });
    const saved = ok<Saved>(res);
    expect(saved).toMatchObject({
      slug: draft.slug,
      subject: 'No typo in here',
      status: 'published',
      inArchive: true,
      revision: 2,
      correction: { mailAlreadySent: false },
    });
    expect((await revisions(draft.id)).items.map((r) => r.kind)).toEqual(['correction', 'draft']);

    const web = (await asJson(`/issues/${draft.slug}`)).json() as { subject: string; preheader: string; html: string };
    expect(web).toMatchObject({ subject: 'No typo in here', preheader: 'new pre' });
    expect(web.html).toContain('The intro.');
    expect(web.html).not.toContain('Teh intro.');
    expect((await asBrowser(`/issues/${draft.slug}`)).body).toContain('No typo in here');
    const listing = (await asJson('/issues')).json() as { items: { slug: string; subject: string }[] };
    expect(listing.items).toEqual([expect.objectContaining({ slug: draft.slug, subject: 'No typo in here' })]);
    const xml = await feed();
    expect(xml).toContain('<title>No typo in here</title>');
    expect(xml).not.toContain('Teh intro.');

    // The preview (what a send would mail) is the corrected issue too.
    expect((await api('GET', `/api/issues/${draft.id}/preview?format=text`)).body).toContain('The intro.');
  });
});

describe('unpublish', () => {
  it('takes a published issue never sent out of the archive and the feed; its web version is 410; it is a draft again', async () => {
    const keep = await publish((await createIssue('Stays')).id);
    const gone = await publish((await createIssue('Goes away')).id);
    expect(await archiveSlugs()).toEqual([gone.slug, keep.slug]);

    const res = await api('POST', `/api/issues/${gone.id}/unpublish`);
    const out = ok<Issue>(res);
    expect(out).toMatchObject({ id: gone.id, status: 'draft', publishedAt: null, inArchive: false, unpublishedAt: expect.any(String) });

    expect(await archiveSlugs()).toEqual([keep.slug]);
    const xml = await feed();
    expect(xml).not.toContain('Goes away');
    expect(xml).toContain('Stays');
    const html = await asBrowser(`/issues/${gone.slug}`);
    expect([html.statusCode, html.headers['content-type']]).toEqual([410, 'text/html; charset=utf-8']);
    expect(html.body).toContain('no longer available');
    expectError(await asJson(`/issues/${gone.slug}`), 410, 'gone');
    // A slug nobody ever published stays a plain 404.
    expect((await asBrowser('/issues/never-was')).statusCode).toBe(404);

    // A draft again: edited (its slug stays: the address was public) and still 410 meanwhile.
    expect(ok<Saved>(await patch(gone.id, { subject: 'Goes away, renamed' }))).toMatchObject({ slug: gone.slug, correction: null, status: 'draft' });
    expect((await asBrowser(`/issues/${gone.slug}`)).statusCode).toBe(410);

    // Published again: back in the archive, at its address, with the change.
    const back = await publish(gone.id);
    expect(back).toMatchObject({ slug: gone.slug, status: 'published', inArchive: true, unpublishedAt: null });
    expect(await archiveSlugs()).toEqual([gone.slug, keep.slug]);
    expect(ok<{ subject: string }>(await asJson(`/issues/${gone.slug}`)).subject).toBe('Goes away, renamed');

    // Out again and deleted, like any draft.
    ok(await api('POST', `/api/issues/${gone.id}/unpublish`));
    expect((await api('DELETE', `/api/issues/${gone.id}`)).statusCode).toBe(204);
    expect((await asBrowser(`/issues/${gone.slug}`)).statusCode).toBe(404);
  });

  it('refuses what is not in the archive: a draft (409 not_published), twice, an unknown issue (404)', async () => {
    const draft = await createIssue('Only a draft');
    expectError(await api('POST', `/api/issues/${draft.id}/unpublish`), 409, 'not_published');
    await publish(draft.id);
    ok(await api('POST', `/api/issues/${draft.id}/unpublish`));
    expectError(await api('POST', `/api/issues/${draft.id}/unpublish`), 409, 'not_published');
    expectError(await api('POST', '/api/issues/999999/unpublish'), 404, 'not_found');
  });
});

describe('a sent issue', () => {
  it('is corrected on the web only (mailAlreadySent), is unpublished but stays sent, and comes back with its send date', async () => {
    await truncate(t.c.pool, 'subscribers');
    await addActiveReaders(t, ['a@example.com', 'b@example.com', 'c@example.com']);
    const issue = await createIssue({ subject: 'Mailed out', markdown: 'Mailed words.\n\n## One\n\nText.' });
    const send = await trigger(issue.id);
    await waitForStatus(issue.id, 'done');
    await workersIdle(t);
    const mailed = t.smtp.messages.length;
    const sent = await get(issue.id);
    expect(sent).toMatchObject({ status: 'published', inArchive: true });

    const corrected = ok<Saved>(await patch(issue.id, { markdown: 'Corrected words.\n\n## One\n\nText.' }, { 'if-match': '"1"' }));
    expect(corrected).toMatchObject({ revision: 2, correction: { mailAlreadySent: true }, slug: issue.slug });
    expect(((await asJson(`/issues/${issue.slug}`)).json() as { html: string }).html).toContain('Corrected words.');
    // Nothing is mailed again, and the send is as it was.
    expect(t.smtp.messages.length).toBe(mailed);
    expect(ok<{ id: number; status: string }>(await api('GET', `/api/issues/${issue.id}/send`))).toMatchObject({ id: send.id, status: 'done' });

    const out = ok<Issue>(await api('POST', `/api/issues/${issue.id}/unpublish`));
    expect(out).toMatchObject({ status: 'published', publishedAt: sent.publishedAt, inArchive: false });
    expect(await archiveSlugs()).toEqual([]);
    expect((await asBrowser(`/issues/${issue.slug}`)).statusCode).toBe(410);
    // Still sent: no deleting it, corrections still allowed.
    expectError(await api('DELETE', `/api/issues/${issue.id}`), 409, 'not_draft');
    expect(ok<Saved>(await patch(issue.id, { subject: 'Mailed out (fixed)' })).correction).toEqual({ mailAlreadySent: true });

    const back = await publish(issue.id);
    expect(back).toMatchObject({ inArchive: true, publishedAt: sent.publishedAt, unpublishedAt: null });
    expect(await archiveSlugs()).toEqual([issue.slug]);
  });

  it('refuses a correction or an unpublish while its send is scheduled (409 send_in_progress), and a draft edit once its send is triggered', async () => {
    const issue = await createIssue('Scheduled one');
    await publish(issue.id);
    const at = new Date(Date.now() + 3_600_000).toISOString();
    await trigger(issue.id, { scheduledAt: at });
    expectError(await patch(issue.id, { markdown: 'late fix' }), 409, 'send_in_progress');
    expectError(await api('POST', `/api/issues/${issue.id}/unpublish`), 409, 'send_in_progress');
    expect(await get(issue.id)).toMatchObject({ revision: 1, inArchive: true });
    expect((await revisions(issue.id)).items).toHaveLength(1);

    const draft = await createIssue('Scheduled draft');
    await trigger(draft.id, { scheduledAt: at });
    expectError(await patch(draft.id, { markdown: 'edit' }), 409, 'not_draft');
  });
});
