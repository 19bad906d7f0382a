import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parseIssueFile } from '../../src/issues/issue-file.js';
import { escapeHtml } from '../../src/web/escape.js';
import { useTestContext } from '../support/context.js';
import { editor, type Issue, type IssueInput } from '../support/editor.js';
import { truncate } from '../support/truncate.js';

const t = useTestContext();
const { api, createIssue: create, publish } = editor(t);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sample = parseIssueFile(readFileSync(path.join(root, 'sample/issue.md'), 'utf8'));

type Summary = { slug: string; subject: string; preheader: string; publishedAt: string; url: string };
type ArchivePage = { items: Summary[]; older: string | null };
type WebVersion = Summary & { html: string };

const asJson = (url: string) => t.app.inject({ method: 'GET', url, headers: { accept: 'application/json' } });
const asBrowser = (url: string) => t.app.inject({ method: 'GET', url, headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });

const createPublished = async (input: IssueInput) => publish((await create(input)).id);

function expectHtml(res: LightMyRequestResponse, status: number): string {
  expect([res.statusCode, res.headers['content-type']]).toEqual([status, 'text/html; charset=utf-8']);
  expect(res.body).toMatch(/^<!doctype html>/i);
  return res.body;
}

function expectJsonError(res: LightMyRequestResponse, status: number, code?: string): void {
  expect([res.statusCode, res.body]).toEqual([status, expect.any(String)]);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect((res.json() as { error: unknown }).error).toMatchObject({ code: code ?? expect.any(String), message: expect.any(String) });
}

/** A Content-Security-Policy header as directive → sources. */
function csp(res: LightMyRequestResponse): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const part of String(res.headers['content-security-policy'] ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out[name] = sources;
  }
  return out;
}

const count = (haystack: string, needle: string) => haystack.split(needle).length - 1;

beforeEach(async () => {
  await truncate(t.c.pool, 'issues');
});

describe('drafts are not public', () => {
  it("lists only published issues, and a draft's address is a 404 page (or 404 JSON)", async () => {
    const draft = await create({ subject: 'Secret draft — not yet', markdown: 'Unfinished.\n\n## Work in progress' });
    const published = await createPublished(sample);

    const listing = expectHtml(await asBrowser('/issues'), 200);
    expect(listing).toContain(`<a href="/issues/${published.slug}">${escapeHtml(sample.subject)}</a>`);
    expect(listing).toContain(escapeHtml(sample.preheader!));
    expect(listing).not.toContain(draft.slug);
    expect(listing).not.toContain('Secret draft');
    expect(listing).toContain('href="/feed.xml"');

    const json = await asJson('/issues');
    expect(json.statusCode).toBe(200);
    expect(json.json()).toEqual({
      items: [
        {
          slug: published.slug,
          subject: sample.subject,
          preheader: sample.preheader,
          publishedAt: published.publishedAt,
          url: `http://broadside.test/issues/${published.slug}`,
        },
      ],
      older: null,
    });

    const page = expectHtml(await asBrowser(`/issues/${draft.slug}`), 404);
    expect(page).not.toContain('Work in progress');
    expect(page).not.toContain('Secret draft');
    const notFound = await asJson(`/issues/${draft.slug}`);
    expectJsonError(notFound, 404, 'not_found');
    expect(notFound.body).not.toContain('Work in progress');

    // Once published, the same address answers.
    await publish(draft.id);
    expect((await asJson(`/issues/${draft.slug}`)).statusCode).toBe(200);
  });

  it('answers unknown and malformed slugs with 404 or 400, never 500', async () => {
    expectHtml(await asBrowser('/issues/no-such-issue'), 404);
    expectJsonError(await asJson('/issues/no-such-issue'), 404, 'not_found');
    for (const slug of ['%00', 'a'.repeat(201), '..%2F..%2Fetc%2Fpasswd', '%E2%80%AE', 'UPPER-case', "x'%20OR%20'1'%3D'1"]) {
      const res = await asJson(`/issues/${slug}`);
      expect([slug.slice(0, 20), res.statusCode >= 400 && res.statusCode < 500]).toEqual([slug.slice(0, 20), true]);
      expectJsonError(res, res.statusCode);
    }
  });

  it('shows an empty archive and an empty but valid feed before anything is published', async () => {
    await create({ subject: 'Only a draft', markdown: 'x' });
    expect(expectHtml(await asBrowser('/issues'), 200)).toContain('No issues have been published yet.');
    expect((await asJson('/issues')).json()).toEqual({ items: [], older: null });
    const feed = await t.app.inject({ method: 'GET', url: '/feed.xml' });
    expect(feed.statusCode).toBe(200);
    expect(XMLValidator.validate(feed.body)).toBe(true);
    expect(feed.body).not.toContain('<item>');
    expect(feed.body).not.toContain('Only a draft');
  });
});

describe('GET /issues/:slug, the web version', () => {
  it('shows the subject, the sections with their ids and "Covered this week", and nothing personal', async () => {
    const issue = await createPublished(sample);
    expect(issue.sections).toHaveLength(7);
    const res = await asBrowser(`/issues/${issue.slug}`);
    const body = expectHtml(res, 200);

    expect(body).toContain(`<h1>${escapeHtml(sample.subject)}</h1>`);
    expect(body).toContain(`<title>${escapeHtml(sample.subject)} · The Test Letter</title>`);
    expect(body).toContain(`<time datetime="${issue.publishedAt}">`);
    expect(body).toMatch(/<nav class="toc"[^>]*>\s*<h2 id="covered-this-week">Covered this week<\/h2>/);
    const nav = body.slice(body.indexOf('<nav class="toc"'), body.indexOf('</nav>'));
    for (const s of issue.sections) {
      expect(nav).toContain(`<li><a href="#${s.id}">${escapeHtml(s.title)}</a></li>`);
      expect(count(body, `<h2 id="${s.id}">`)).toBe(1);
    }
    // The sections appear in order after the navigation.
    const positions = issue.sections.map((s) => body.indexOf(`<h2 id="${s.id}">`));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(positions[0]).toBeGreaterThan(body.indexOf('</nav>'));

    // Anyone may read it: no reader's name, links or tokens, and no template slot.
    expect(body).not.toContain('/unsubscribe/');
    expect(body).not.toContain('/manage/');
    expect(body).not.toContain('Sample Reader');
    // The only braces are the ones the editor typed in the text.
    expect(count(body, '{{')).toBe(count(sample.markdown, '{{'));

    // Its images live on other hosts: https images are allowed, scripts are not.
    const policy = csp(res);
    expect(policy['img-src']).toContain('https:');
    expect(policy['default-src']).toEqual(["'none'"]);
    expect(policy['script-src']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('escapes what the editor typed in the subject and headings', async () => {
    const subject = `<script>alert(1)</script> Tom & Jerry's "best" | <50 ms 📬 — café`;
    const issue = await createPublished({
      subject,
      markdown: `Intro <img src=x onerror=alert(2)>\n\n## A <b onclick="alert(3)">bold</b> & "quoted" heading\n\n<script>alert(4)</script>\n\nText.`,
    });
    const body = expectHtml(await asBrowser(`/issues/${issue.slug}`), 200);
    expect(body).toContain(escapeHtml(subject));
    expect(body).not.toMatch(/<script|<img|\sonerror=|\sonclick=|alert\([234]\)/i);
    expect(body).toContain(`<h2 id="${issue.sections[0]!.id}">A <b>bold</b> &amp; "quoted" heading</h2>`);
    const listing = expectHtml(await asBrowser('/issues'), 200);
    expect(listing).toContain(escapeHtml(subject));
    expect(listing).not.toMatch(/<script/i);
  });

  it('answers JSON with slug, subject, publishedAt, url and the HTML of the sections', async () => {
    const issue = await createPublished(sample);
    const res = await asJson(`/issues/${issue.slug}`);
    expect(res.statusCode).toBe(200);
    const web = res.json() as WebVersion;
    expect(web).toEqual({
      slug: issue.slug,
      subject: sample.subject,
      preheader: sample.preheader,
      publishedAt: issue.publishedAt,
      url: `http://broadside.test/issues/${issue.slug}`,
      html: expect.any(String),
    });
    for (const s of issue.sections) {
      expect(web.html).toContain(`<h2 id="${s.id}">`);
      expect(web.html).toContain(`<a href="#${s.id}">${escapeHtml(s.title)}</a>`);
    }
    expect(web.html).not.toMatch(/\/unsubscribe\/|\/manage\/|Sample Reader/);
    // The same article as the page.
    const page = (await asBrowser(`/issues/${issue.slug}`)).body;
    expect(page).toContain(web.html);
  });
});

describe('GET /issues, the archive', () => {
  it('pages newest first, 50 at a time, through the older cursor to a last page with older null', async () => {
    const total = 53;
    const drafts: Issue[] = [];
    for (let batch = 0; batch < total; batch += 10) {
      const size = Math.min(10, total - batch);
      drafts.push(
        ...(await Promise.all(
          Array.from({ length: size }, (_, i) =>
            create({ subject: `Archive issue ${batch + i + 1}`, markdown: `Body ${batch + i + 1}\n\n## Section ${batch + i + 1}` }),
          ),
        )),
      );
    }
    // Published one after another: publication order is the archive's order.
    drafts.sort((a, b) => a.id - b.id);
    const published: Issue[] = [];
    for (const d of drafts) published.push(await publish(d.id));
    const unpublished = await create({ subject: 'Still a draft', markdown: 'x' });
    // Publications a microsecond apart could swap places with ids; rounding them to one
    // millisecond makes ties that the id breaks in publication order, as the test expects.
    await t.c.pool.query(`UPDATE issues SET published_at = date_trunc('milliseconds', published_at) WHERE published_at IS NOT NULL`);
    const newestFirst = published.map((p) => p.slug).reverse();

    const first = await asJson('/issues');
    expect(first.statusCode).toBe(200);
    const p1 = first.json() as ArchivePage;
    expect(p1.items).toHaveLength(50);
    expect(p1.older).toMatch(/^[0-9a-z]+\.[0-9a-z]+$/);
    const p2 = (await asJson(`/issues?before=${p1.older}`)).json() as ArchivePage;
    expect(p2.items).toHaveLength(3);
    expect(p2.older).toBeNull();
    expect([...p1.items, ...p2.items].map((i) => i.slug)).toEqual(newestFirst);
    expect([...p1.items, ...p2.items].map((i) => i.slug)).not.toContain(unpublished.slug);
    const times = [...p1.items, ...p2.items].map((i) => Date.parse(i.publishedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));

    // The HTML pages link the same way.
    const html1 = expectHtml(await asBrowser('/issues'), 200);
    expect(html1).toContain(`<a href="/issues?before=${p1.older}" rel="next">Older issues</a>`);
    expect(count(html1, '<li><a href="/issues/')).toBe(50);
    const html2 = expectHtml(await asBrowser(`/issues?before=${p1.older}`), 200);
    expect(count(html2, '<li><a href="/issues/')).toBe(3);
    expect(html2).not.toContain('rel="next"');

    // The feed carries the 20 newest.
    const feed = parseFeed((await t.app.inject({ method: 'GET', url: '/feed.xml' })).body);
    expect(feed.items.map((i) => i.link)).toEqual(newestFirst.slice(0, 20).map((s) => `http://broadside.test/issues/${s}`));
  });

  it('refuses a malformed cursor with 400, as JSON or as a page, never 500', async () => {
    await createPublished({ subject: 'One', markdown: 'x' });
    for (const before of ['zzz', '1.', '.1', 'a.b.c', 'A.B', '1.2%00', '-1.1', 'zzzzzzzzzzzzz.1']) {
      const res = await asJson(`/issues?before=${before}`);
      expect([before, res.statusCode]).toEqual([before, 400]);
      expectJsonError(res, 400);
      expectHtml(await asBrowser(`/issues?before=${before}`), 400);
    }
    // A well-formed cursor older than everything is an empty page.
    expect((await asJson('/issues?before=1.1')).json()).toEqual({ items: [], older: null });
  });

  it('reaches every issue when several were published within one millisecond', async () => {
    const drafts: Issue[] = [];
    for (let i = 0; i < 55; i++) drafts.push(await create({ subject: `Batch ${i}`, markdown: 'x' }));
    await t.c.pool.query(`UPDATE issues SET published_at = now(), updated_at = now()`);
    const p1 = (await asJson('/issues')).json() as ArchivePage;
    expect(p1.items).toHaveLength(50);
    const p2 = (await asJson(`/issues?before=${p1.older}`)).json() as ArchivePage;
    expect([...p1.items, ...p2.items].map((i) => i.slug).sort()).toEqual(drafts.map((d) => d.slug).sort());
  });
});

type FeedItem = { title: string; link: string; guid: string; pubDate: string; description?: string; content: string };

/** The feed, checked for well-formedness and read back. */
function parseFeed(xml: string): { rss: Record<string, unknown>; channel: Record<string, unknown>; items: FeedItem[] } {
  expect(XMLValidator.validate(xml)).toBe(true);
  // XMLValidator is lenient where XML 1.0 is not (expat, libxml2 and feed readers refuse these):
  // most C0 controls, U+FFFE and U+FFFF are not allowed anywhere, and "]]>" not outside CDATA.
  expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/);
  expect(xml.replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '')).not.toContain(']]>');
  const doc = new XMLParser({ ignoreAttributes: false, parseTagValue: false, trimValues: false, isArray: (name) => name === 'item' }).parse(xml) as {
    rss: Record<string, unknown>;
  };
  const rss = doc.rss;
  const channel = rss.channel as Record<string, unknown>;
  const items = ((channel.item ?? []) as Record<string, unknown>[]).map((i) => ({
    title: i.title as string,
    link: i.link as string,
    guid: (i.guid as Record<string, string>)['#text']!,
    pubDate: i.pubDate as string,
    description: i.description as string | undefined,
    content: i['content:encoded'] as string,
  }));
  return { rss, channel, items };
}

describe('GET /feed.xml', () => {
  it('is RSS 2.0 of the published issues, newest first, with titles that round-trip exactly and the full article', async () => {
    const subjects = [
      `Tom & Jerry's "best" | <50 ms 📬 — café`,
      'AT&amp;T, <b>bold</b> & a CDATA end ]]> in the middle',
      `Zürich «notes» — ‘smart’ quotes, €, 🚀 and \\ backslash`,
    ];
    const published: Issue[] = [];
    for (const [i, subject] of subjects.entries()) {
      published.push(
        await createPublished({
          subject,
          preheader: i === 0 ? 'Teaser & “more” <here>' : '',
          markdown: `Intro ${i}.\n\n## Section ${i} & more\n\nText ${i} with <b>bold</b> and ]]> too.\n\n## Another ${i}\n\n- item`,
        }),
      );
    }
    await create({ subject: 'Draft in waiting', markdown: 'x\n\n## Hidden' });

    const res = await t.app.inject({ method: 'GET', url: '/feed.xml' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/rss+xml; charset=utf-8');
    const { rss, channel, items } = parseFeed(res.body);
    expect(rss['@_version']).toBe('2.0');
    expect(channel.title).toBe('The Test Letter');
    expect(channel.link).toBe('http://broadside.test/issues');
    expect(res.body).not.toContain('Draft in waiting');
    expect(res.body).not.toContain('Hidden');

    const newestFirst = [...published].reverse();
    expect(items.map((i) => i.title)).toEqual(newestFirst.map((p) => p.subject));
    expect(items.map((i) => i.title)).toEqual([...subjects].reverse());
    for (const [n, item] of items.entries()) {
      const p = newestFirst[n]!;
      const url = `http://broadside.test/issues/${p.slug}`;
      expect(item.link).toBe(url);
      expect(item.guid).toBe(url);
      const date = new Date(item.pubDate);
      expect(Number.isNaN(date.getTime())).toBe(false);
      // RFC 822 dates carry whole seconds.
      expect(date.getTime()).toBe(Math.floor(Date.parse(p.publishedAt!) / 1000) * 1000);
      // The article is the web version's, sections and all.
      const web = (await asJson(`/issues/${p.slug}`)).json() as WebVersion;
      expect(item.content).toBe(web.html);
      for (const s of p.sections) expect(item.content).toContain(`<h2 id="${s.id}">`);
      expect(item.content).not.toMatch(/\/unsubscribe\/|\/manage\/|Sample Reader|\{\{/);
    }
    expect(items.at(-1)!.description).toBe('Teaser & “more” <here>');
  });

  it('stays well-formed when a subject holds "]]>" twice', async () => {
    const subject = 'Two ]]> CDATA ]]> ends';
    await createPublished({ subject, preheader: 'and ]]> two ]]> here', markdown: 'x\n\n## S' });
    const { items } = parseFeed((await t.app.inject({ method: 'GET', url: '/feed.xml' })).body);
    expect(items.map((i) => [i.title, i.description])).toEqual([[subject, 'and ]]> two ]]> here']]);
  });

  it('stays well-formed when the Markdown holds control characters', async () => {
    const res = await api('POST', '/api/issues', { subject: 'Control characters', markdown: 'a \u000b b \u001b c \u0007\n\n## Bell \u0007 heading' });
    if (res.statusCode === 201) await publish((res.json() as Issue).id);
    else expect(res.statusCode).toBe(400);
    parseFeed((await t.app.inject({ method: 'GET', url: '/feed.xml' })).body);
  });
});
