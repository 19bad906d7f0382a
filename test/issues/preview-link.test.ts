// Browser preview links: POST /api/issues/:id/preview-link hands out a short-lived signed link;
// GET /preview/<token> is the page it opens. Real HTTP (inject) against a real database.
import { load } from 'cheerio';
import { describe, expect, it } from '@jest/globals';
import { PreviewLinks } from '../../src/issues/preview-links.js';
import { maskUrl } from '../../src/log.js';
import { pathOf, TEST_TOKEN, useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';

const t = useTestContext();
const { api, createIssue } = editor(t);

type Link = { url: string; expiresAt: string };

async function linkFor(id: number): Promise<Link> {
  const res = await api('POST', `/api/issues/${id}/preview-link`);
  expect([res.statusCode, res.body]).toEqual([200, expect.any(String)]);
  return res.json() as Link;
}

const open = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url: pathOf(url), headers });

/** The token part of a preview URL, split into its id, expiry and signature. */
const partsOf = (url: string) => pathOf(url).replace('/preview/', '').split('.') as [string, string, string];

describe('POST /api/issues/:id/preview-link', () => {
  it('answers a link under PUBLIC_URL that expires in an hour and holds no API token', async () => {
    const issue = await createIssue('Preview me');
    const before = Date.now();
    const link = await linkFor(issue.id);
    expect(link.url).toMatch(/^http:\/\/broadside\.test\/preview\/[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    expect(link.url).not.toContain(TEST_TOKEN);
    const expires = Date.parse(link.expiresAt);
    expect(expires).toBeGreaterThan(before + 59 * 60_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 60 * 60_000);
  });

  it('needs the editor token, and an issue that exists', async () => {
    const issue = await createIssue('Guarded');
    const anonymous = await t.app.inject({ method: 'POST', url: `/api/issues/${issue.id}/preview-link` });
    expect(anonymous.statusCode).toBe(401);
    const missing = await api('POST', '/api/issues/999999/preview-link');
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'not_found']);
  });
});

describe('GET /preview/<token>', () => {
  it("shows the draft's email in a sandboxed iframe, with no script and a strict policy", async () => {
    const issue = await createIssue({ subject: 'Week of <tags> & pipes', preheader: 'A look ahead', markdown: 'Hello **readers**.\n\n## First\n\nBody text.' });
    const res = await open((await linkFor(issue.id)).url);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['x-robots-tag']).toBe('noindex');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src/);
    const $ = load(res.body);
    expect($('h1').text()).toBe('Preview: Week of <tags> & pipes');
    expect($('p.muted').text()).toMatch(/^Draft · .* works until \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    expect($('script')).toHaveLength(0);
    expect($('link[rel=stylesheet]')).toHaveLength(0);
    const frame = $('iframe');
    expect(frame).toHaveLength(1);
    expect(frame.attr('sandbox')).toBe('');
    // The email as the API's preview route gives it, as the frame's whole document.
    const preview = await api('GET', `/api/issues/${issue.id}/preview`);
    expect(frame.attr('srcdoc')).toBe(preview.body);
    expect(frame.attr('srcdoc')).toContain('Body text.');
    expect($('.frame').attr('style')).toBe('width:100%');
    expect(
      $('a[aria-current=page]')
        .map((_, a) => $(a).text())
        .get(),
    ).toEqual(['Desktop', 'HTML']);
  });

  it('switches to phone width and to the text version by its links', async () => {
    const issue = await createIssue({ subject: 'Switches', markdown: 'Intro.\n\n## Only section\n\nSome words.' });
    const first = load((await open((await linkFor(issue.id)).url)).body);
    const phoneHref = first('a:contains("Phone")').attr('href')!;
    const phone = load((await t.app.inject({ method: 'GET', url: phoneHref })).body);
    expect(phone('.frame').attr('style')).toBe('width:375px');
    expect(phone('iframe')).toHaveLength(1);
    const textHref = phone('a:contains("Text")').attr('href')!;
    const textRes = await t.app.inject({ method: 'GET', url: textHref });
    expect(textRes.statusCode).toBe(200);
    const text = load(textRes.body);
    expect(text('iframe')).toHaveLength(0);
    const plain = await api('GET', `/api/issues/${issue.id}/preview?format=text`);
    expect(text('pre').text()).toBe(plain.body);
    expect(
      text('a[aria-current=page]')
        .map((_, a) => text(a).text())
        .get(),
    ).toEqual(['Phone', 'Text']);
  });

  it('refuses an option it does not know', async () => {
    const issue = await createIssue('Options');
    const res = await open(`${(await linkFor(issue.id)).url}?view=tablet`);
    expect(res.statusCode).toBe(400);
  });

  it('answers 410 with a page saying so once the link has expired', async () => {
    const issue = await createIssue('Expired');
    const links = new PreviewLinks(t.config.secret, t.config.publicUrl, 60);
    const old = links.create(issue.id, new Date(Date.now() - 61 * 60_000));
    const res = await open(old.url);
    expect(res.statusCode).toBe(410);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(load(res.body)('[role=alert]').text()).toMatch(/expired.*broadside preview/);
    const json = await open(old.url, { accept: 'application/json' });
    expect([json.statusCode, json.json().error.code]).toEqual([410, 'preview_link_expired']);
  });

  it('answers 403 for a forged link, a changed one, a link for another issue and one signed with another secret', async () => {
    const mine = await createIssue('Mine');
    const other = await createIssue('Other');
    const { url } = await linkFor(mine.id);
    const [id, exp, sig] = partsOf(url);
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;
    const later = (parseInt(exp, 36) + 86_400).toString(36);
    const foreign = new PreviewLinks('another-secret-that-is-long-enough-000000', t.config.publicUrl, 60).create(mine.id).url;
    const forged = [
      `/preview/${id}.${exp}.${flipped}`,
      // The same signature for the other issue, or for a later expiry.
      `/preview/${other.id.toString(36)}.${exp}.${sig}`,
      `/preview/${id}.${later}.${sig}`,
      pathOf(foreign),
      '/preview/not-a-token',
      `/preview/${id}.${exp}`,
      `/preview/${TEST_TOKEN}`,
    ];
    for (const path of forged) {
      const res = await t.app.inject({ method: 'GET', url: path });
      expect([path, res.statusCode]).toEqual([path, 403]);
      expect(res.body).toContain('not valid');
      expect(res.body).not.toContain('Mine');
    }
    // The genuine link shows its own issue, not the other.
    const good = load((await open(url)).body);
    expect(good('h1').text()).toBe('Preview: Mine');
  });

  it('keeps the link out of the logs', () => {
    expect(maskUrl('/preview/a1.m2x3.abcdefghijklmnopqrstuv?view=phone&format=text')).toBe('/preview/…?view=phone&format=text');
  });

  it('answers 404 once the issue is deleted', async () => {
    const issue = await createIssue('Short-lived');
    const { url } = await linkFor(issue.id);
    expect((await api('DELETE', `/api/issues/${issue.id}`)).statusCode).toBe(204);
    expect((await open(url)).statusCode).toBe(404);
  });
});
