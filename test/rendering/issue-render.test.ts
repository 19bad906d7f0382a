import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { load } from 'cheerio';
import { AppError } from '../../src/errors.js';
import { IssueFileError, parseIssueFile } from '../../src/issues/issue-file.js';
import { escapeHtml } from '../../src/web/escape.js';
import {
  GMAIL_CLIP_BYTES,
  IssueRenderer,
  issueWarnings,
  loadIssueTemplateFiles,
  personalise,
  sampleReaderVars,
  type CompiledIssue,
  type IssueReaderVars,
  type IssueSource,
} from '../../src/rendering/issue.js';
import { emailsDir } from '../../src/rendering/reader-mail.js';

const PUBLIC_URL = 'https://news.example.org';
const READER_SLOTS = ['newsletter', 'issue_date', 'greeting', 'unsubscribe_url', 'manage_url', 'postal_address'];

const repoFile = (p: string) => path.resolve(emailsDir, '..', p);

/** A reader whose links carry `&` in the query, so escaping of attribute values shows. */
function reader(overrides: Partial<IssueReaderVars> = {}): IssueReaderVars {
  return {
    newsletter: 'The Relay',
    issue_date: '12 November 2026',
    greeting: 'Hi Ada,',
    unsubscribe_url: `${PUBLIC_URL}/unsubscribe/tok-ada?list=relay&src=email`,
    manage_url: `${PUBLIC_URL}/manage/tok-ada?tab=prefs&lang=en`,
    postal_address: 'The Relay Ltd, 1 Quay St & Co, Bristol BS1 4DJ',
    ...overrides,
  };
}

function source(overrides: Partial<IssueSource> = {}): IssueSource {
  return { subject: 'A plain subject', preheader: '', markdown: 'Intro.\n\n## Only section\n\nText.', slug: 'plain', ...overrides };
}

/** The hidden preview line MJML puts first in <body>. */
function previewText(html: string): string {
  const $ = load(html);
  const hidden = $('body div').filter((_, el) => /display:\s*none/.test(el.attribs.style ?? ''));
  expect(hidden.length).toBeGreaterThan(0);
  return hidden.first().text();
}

/** Lines of the text part under a heading: the title, then a rule of its length. */
const underlinedIn = (title: string, rule: string) => `\n${title}\n${rule.repeat([...title].length)}\n`;

let renderer: IssueRenderer;

beforeAll(async () => {
  renderer = new IssueRenderer(await loadIssueTemplateFiles(emailsDir), PUBLIC_URL);
});

describe('IssueRenderer with awkward headings, subject and reader values', () => {
  const SUBJECT = 'Tom & Jerry\'s "best" | <b>bold</b> 📬 — café «ü» …';
  const MARKDOWN = [
    'Welcome to the awkward issue. Editors write {{unsubscribe_url}}, {{ name }} and {{@intro}} in prose.',
    '',
    '## Tom & Jerry\'s "best" | <b>bold</b> 📬 — café «ü» …',
    '',
    '- first item',
    '- second item with a [link](https://example.com/read?a=1&b=2)',
    '',
    '## Why "<50 ms" | p99 matters',
    '',
    'Typed as text: \\<b>not bold\\</b> and `<b>code</b>`.',
    '',
    '## Q&A: 10 > 9',
    '',
    'Closing words.',
    '',
    '## Using `<b>` tags',
    '',
    'The end.',
  ].join('\n');
  // Titles as the reader should read them: Markdown markup gone, HTML typed in Markdown (the
  // first heading's <b>) rendered, characters typed as text (the last one's `<b>`) kept.
  const TITLES = ['Tom & Jerry\'s "best" | bold 📬 — café «ü» …', 'Why "<50 ms" | p99 matters', 'Q&A: 10 > 9', 'Using <b> tags'];
  const SLUG = 'awkward-issue';

  let issue: CompiledIssue;
  let html: string;
  let text: string;

  beforeAll(async () => {
    issue = await renderer.compile({ subject: SUBJECT, preheader: '', markdown: MARKDOWN, slug: SLUG });
    ({ html, text } = personalise(issue, reader()));
  });

  it('parses the sections the test expects', () => {
    expect(issue.content.sections.map((s) => s.title)).toEqual(TITLES);
  });

  it('links "Covered this week" to every section, once each and in order, by an id that exists', () => {
    const $ = load(html);
    const tocHeading = $('h2#covered-this-week');
    expect(tocHeading.length).toBe(1);
    expect(tocHeading.text()).toBe('Covered this week');
    const links = tocHeading.nextAll('ol').find('li > a').toArray();
    const ids = issue.content.sections.map((s) => s.id);
    expect(links.map((a) => a.attribs.href)).toEqual(ids.map((id) => `#${id}`));
    expect(links.map((a) => $(a).text())).toEqual(TITLES);
    for (const [i, id] of ids.entries()) {
      const target = $(`[id="${id}"]`);
      expect(target.length).toBe(1);
      expect(target.prop('tagName')).toBe('H2');
      expect(target.text()).toBe(TITLES[i]);
    }
  });

  it('escapes headings: their text is the title, and `<b>` typed as text never becomes a tag', () => {
    const $ = load(html);
    const [, why, qa, usingB] = issue.content.sections;
    expect($(`#${why!.id}`).text()).toBe('Why "<50 ms" | p99 matters');
    expect($(`#${qa!.id}`).text()).toBe('Q&A: 10 > 9');
    expect($(`#${usingB!.id} b`).length).toBe(0);
    expect($(`#${usingB!.id} code`).text()).toBe('<b>');
    // In the table of contents every title is text, even where the heading had HTML in it.
    expect($('h2#covered-this-week').nextAll('ol').find('b').length).toBe(0);
    // The escaped-as-text paragraph of the second section.
    const p = $(`#${why!.id}`).nextAll('p').first();
    expect(p.text()).toBe('Typed as text: <b>not bold</b> and <b>code</b>.');
    expect(p.find('b').length).toBe(0);
    expect(html).toContain('Why &quot;&lt;50 ms&quot; | p99 matters');
  });

  it('shows each heading verbatim in the text part, in the list and over its section', () => {
    TITLES.forEach((title, i) => {
      expect(text).toContain(`\n${String(i + 1).padStart(2)}. ${title}\n`);
      expect(text).toContain(underlinedIn(title, '-'));
    });
    expect(text).toContain('Typed as text: <b>not bold</b> and <b>code</b>.');
  });

  it('escapes the subject in <title>, the preview label and the h1', () => {
    const $ = load(html);
    expect($('title').text()).toBe(SUBJECT);
    expect($('h1').length).toBe(1);
    expect($('h1').text()).toBe(SUBJECT);
    expect($('h1 b').length).toBe(0);
    expect($('[aria-label]').first().attr('aria-label')).toBe(SUBJECT);
    expect(html).toContain(`<title>${escapeHtml(SUBJECT)}</title>`);
  });

  it('shows the subject verbatim, underlined, in the text part', () => {
    expect(text).toContain(underlinedIn(SUBJECT, '='));
  });

  it.each(['Hi <img src=x onerror=alert(1)>,', 'Hi "quoted" & <b>,'])('escapes the greeting %j in the HTML and keeps it literal in the text', (greeting) => {
    const p = personalise(issue, reader({ greeting }));
    const $ = load(p.html);
    const holders = $('div').filter((_, el) => $(el).children().length === 0 && $(el).text() === greeting);
    expect(holders.length).toBe(1);
    expect($('img[src="x"], [onerror]').length).toBe(0);
    expect($('b').length).toBe(load(html)('b').length); // only the editor's own <b>, none from the name
    expect(p.html).toContain(escapeHtml(greeting));
    expect(p.text).toContain(`\n${greeting}\n`);
  });

  it("puts the reader's links, the web version and the postal address in the HTML, escaped", () => {
    const r = reader();
    const $ = load(html);
    expect($('a').filter((_, a) => a.attribs.href === r.unsubscribe_url).length).toBe(1);
    expect($('a').filter((_, a) => a.attribs.href === r.manage_url).length).toBe(1);
    expect(
      $('a')
        .filter((_, a) => a.attribs.href === `${PUBLIC_URL}/issues/${SLUG}`)
        .text(),
    ).toBe('View in your browser');
    expect($('td.footer').text()).toContain(r.postal_address);
    // Attribute values are escaped: the raw `&` never appears, its entity does.
    expect(html).toContain(`href="${escapeHtml(r.unsubscribe_url)}"`);
    expect(html).not.toContain(r.unsubscribe_url);
    expect(html).not.toContain(r.manage_url);
  });

  it("puts the reader's links, the web version, the address, headings, list items and link URLs in the text part", () => {
    const r = reader();
    expect(text).toContain(`Unsubscribe: ${r.unsubscribe_url}\n`);
    expect(text).toContain(`Manage your subscription: ${r.manage_url}\n`);
    expect(text).toContain(`View this issue in your browser: ${PUBLIC_URL}/issues/${SLUG}\n`);
    expect(text).toContain(r.postal_address);
    expect(text).toContain('\n - first item\n');
    expect(text).toMatch(/\n - second item with a link \[https:\/\/example\.com\/read\?a=1&b=2\]\n/);
    expect(text).not.toMatch(/<(?:p|a|li|ul|h2|div)\b/);
    expect(text).not.toContain('&amp;');
  });

  it('personalises by filling slots only: two readers get the same email apart from their own values', () => {
    const ada = reader();
    const bob = reader({
      greeting: 'Hello Bob & Co,',
      unsubscribe_url: `${PUBLIC_URL}/unsubscribe/tok-bob?list=relay&src=email`,
      manage_url: `${PUBLIC_URL}/manage/tok-bob?tab=prefs&lang=en`,
    });
    const a = personalise(issue, ada);
    const b = personalise(issue, bob);
    expect(a.html).not.toBe(b.html);
    expect(a.text).not.toBe(b.text);
    const neutral = (out: string, vars: IssueReaderVars, esc: (s: string) => string) =>
      out.split(esc(vars.unsubscribe_url)).join('UNSUB').split(esc(vars.manage_url)).join('MANAGE').split(esc(vars.greeting)).join('GREETING');
    expect(neutral(a.html, ada, escapeHtml)).toBe(neutral(b.html, bob, escapeHtml));
    expect(neutral(a.text, ada, (s) => s)).toBe(neutral(b.text, bob, (s) => s));
    // Personalising does not change the compiled issue.
    expect(personalise(issue, ada)).toEqual(a);
  });
});

describe('IssueRenderer: text the editor writes never becomes a reader slot', () => {
  let issue: CompiledIssue;
  const markdown = [
    'Editors write {{unsubscribe_url}}, {{ name }} and {{@intro}} in prose.',
    '',
    '## The {{greeting}} tag',
    '',
    '<a href="https://example.com/{{unsubscribe_url}}" title="{{manage_url}}">raw link</a>',
    '',
    '```',
    '{{postal_address}}',
    '```',
    '',
    '> {{newsletter}} in a quote, ![{{issue_date}}](https://example.org/i.png)',
  ].join('\n');

  beforeAll(async () => {
    issue = await renderer.compile({ subject: 'Merge tags: {{greeting}} & {{@subject}}', preheader: 'Preview {{manage_url}}', markdown, slug: 'braces' });
  });

  it('leaves only the known reader variables as slots in the HTML and text', () => {
    expect([...new Set(issue.html.slots)].sort()).toEqual([...READER_SLOTS].sort());
    expect([...new Set(issue.text.slots)].sort()).toEqual([...READER_SLOTS].sort());
  });

  it('shows the braces literally in the personalised HTML, as text and in attributes', () => {
    const r = reader();
    const { html } = personalise(issue, r);
    const $ = load(html);
    expect($('title').text()).toBe('Merge tags: {{greeting}} & {{@subject}}');
    expect($('h1').text()).toBe('Merge tags: {{greeting}} & {{@subject}}');
    expect(previewText(html)).toBe('Preview {{manage_url}}');
    expect(
      $('p')
        .filter((_, p) => $(p).text().startsWith('Editors write'))
        .text(),
    ).toBe('Editors write {{unsubscribe_url}}, {{ name }} and {{@intro}} in prose.');
    const section = issue.content.sections[0]!;
    expect($(`#${section.id}`).text()).toBe('The {{greeting}} tag');
    expect(
      $('a')
        .filter((_, a) => $(a).text() === 'raw link')
        .attr('title'),
    ).toBe('{{manage_url}}');
    expect(
      $('a')
        .filter((_, a) => $(a).text() === 'raw link')
        .attr('href'),
    ).toBe('https://example.com/{{unsubscribe_url}}');
    expect($('pre code').text()).toBe('{{postal_address}}\n');
    expect($('img[src="https://example.org/i.png"]').attr('alt')).toBe('{{issue_date}}');
    // The reader's own values appear where the template puts them, and nowhere else.
    expect(html.split(escapeHtml(r.unsubscribe_url)).length - 1).toBe(1);
    expect(html.split(escapeHtml(r.manage_url)).length - 1).toBe(1);
    expect(html.split(escapeHtml(r.greeting)).length - 1).toBe(1);
  });

  it('shows the braces literally in the text part', () => {
    const r = reader();
    const { text } = personalise(issue, r);
    expect(text).toContain('Merge tags: {{greeting}} & {{@subject}}\n');
    expect(text).toContain('Editors write {{unsubscribe_url}}, {{ name }} and {{@intro}} in prose.');
    expect(text).toContain('The {{greeting}} tag');
    expect(text).toContain('{{postal_address}}');
    expect(text.split(r.unsubscribe_url).length - 1).toBe(1);
    expect(text.split(r.greeting).length - 1).toBe(1);
  });
});

describe('IssueRenderer with hostile Markdown', () => {
  const HOSTILE = [
    '<script>alert(1)</script>',
    '<SCRIPT SRC="https://evil.example/x.js"></SCRIPT>',
    '<img src="https://example.org/x.png" onerror="alert(1)"> <img src=x onerror=alert(1)>',
    '<a href="javascript:alert(1)">a</a> <a href="JaVaScRiPt:alert(1)">b</a> <a href="jav&#x61;script:alert(1)">c</a>',
    '<p onclick="alert(1)" onmouseover="alert(2)">hover</p>',
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">go</button></form>',
    '<math><mtext><a href="javascript:alert(1)">m</a></mtext></math>',
    '',
    '## Heading <img src=x onerror=alert(1)>',
    '',
    '<details open ontoggle="alert(1)">d</details> <body onload="alert(1)">',
  ].join('\n\n');

  it('compiles to HTML with no script, event handler or javascript: URL anywhere', async () => {
    const issue = await renderer.compile(source({ markdown: HOSTILE, subject: '<script>alert(1)</script>', preheader: '<img src=x onerror=alert(1)>' }));
    const { html } = personalise(issue, reader({ greeting: '<script>alert(1)</script>' }));
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<[^>]*\son[a-z]+\s*=/i); // a handler attribute inside a tag (escaped text may mention one)
    expect(html).not.toMatch(/javascript:/i);
    const $ = load(html);
    expect($('script, iframe, form, button, svg, math, details').length).toBe(0);
    const handlers = $.root()
      .find('*')
      .toArray()
      .flatMap((el) => Object.keys(el.attribs).filter((a) => a.startsWith('on')));
    expect(handlers).toEqual([]);
  });

  it('leaves a Markdown javascript: link as visible text, never as a link', async () => {
    const issue = await renderer.compile(source({ markdown: 'Intro [click](javascript:alert(1)) and [x](JAVASCRIPT:alert(1)).\n\n## S\n\nt' }));
    const $ = load(personalise(issue, reader()).html);
    const scripted = $('[href], [src]')
      .toArray()
      .filter((el) => /javascript:/i.test(el.attribs.href ?? el.attribs.src ?? ''));
    expect(scripted).toEqual([]);
    expect(
      $('p')
        .filter((_, p) => $(p).text().startsWith('Intro'))
        .find('a').length,
    ).toBe(0);
  });
});

describe('IssueRenderer: preheader', () => {
  it('shows a given preheader as the hidden preview text, escaped', async () => {
    const preheader = 'Latency at the inbox edge & the "<50 ms" rule';
    const issue = await renderer.compile(source({ preheader, markdown: 'An intro that should not be the preview.\n\n## S\n\nt' }));
    const { html } = personalise(issue, reader());
    expect(previewText(html)).toBe(preheader);
    expect(html).toContain(escapeHtml(preheader));
  });

  it('uses the intro as the preview when there is no preheader', async () => {
    const issue = await renderer.compile(source({ markdown: 'Short **intro** with a [link](https://example.org/).\n\n## S\n\nt' }));
    expect(previewText(personalise(issue, reader()).html)).toBe('Short intro with a link [https://example.org/].');
  });

  it('cuts a long intro to an excerpt of at most 140 characters at a word boundary', async () => {
    const intro =
      'Good morning, and welcome to The Relay, the weekly briefing on the plumbing behind the inbox. This is issue #42, and we read the mailing lists so you do not have to — «café» included.';
    const issue = await renderer.compile(source({ markdown: `${intro}\n\n## S\n\nt` }));
    const preview = previewText(personalise(issue, reader()).html);
    expect(preview.endsWith('…')).toBe(true);
    expect([...preview].length).toBeLessThanOrEqual(140);
    const kept = preview.slice(0, -1);
    expect(kept.length).toBeGreaterThan(100);
    expect(intro.startsWith(kept)).toBe(true);
    expect(intro[kept.length]).toBe(' ');
  });
});

describe('IssueRenderer: size and warnings', () => {
  it.each(['sample/issue.md', 'bench/issue-30kb.md'])("renders %s below Gmail's clipping size with no warnings", async (file) => {
    const parsed = parseIssueFile(await readFile(repoFile(file), 'utf8'));
    const issue = await renderer.compile({ subject: parsed.subject, preheader: parsed.preheader ?? '', markdown: parsed.markdown, slug: 'size-check' });
    expect(issue.content.sections.length).toBeGreaterThanOrEqual(5);
    expect(issue.htmlBytes).toBeGreaterThan(20 * 1024);
    expect(issue.htmlBytes).toBeLessThan(102 * 1024);
    expect(issueWarnings(issue.htmlBytes, issue.content.sections.length)).toEqual([]);
  });

  it('measures htmlBytes as the UTF-8 size of the personalised HTML', async () => {
    const issue = await renderer.compile(source({ subject: 'Ünïcödé 📬', markdown: 'Café «ü» 📬 '.repeat(200) }));
    const { html } = personalise(issue, sampleReaderVars({ newsletter: 'Newsletter', publicUrl: PUBLIC_URL, postalAddress: '' }));
    // The sample date varies with today's date; allow for its length.
    expect(Math.abs(issue.htmlBytes - Buffer.byteLength(html))).toBeLessThanOrEqual(20);
    expect(issue.htmlBytes).toBeGreaterThan(html.length);
  });

  it('warns that Gmail will clip a huge issue', async () => {
    const para = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. ';
    const markdown = Array.from({ length: 40 }, (_, i) => `## Section ${i + 1}\n\n${para.repeat(40)}\n`).join('\n');
    expect(markdown.length).toBeGreaterThan(150 * 1024);
    const issue = await renderer.compile(source({ markdown }));
    expect(issue.htmlBytes).toBeGreaterThan(GMAIL_CLIP_BYTES);
    const warnings = issueWarnings(issue.htmlBytes, issue.content.sections.length);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Gmail clips/);
    expect(warnings[0]).toContain(`${(issue.htmlBytes / 1024).toFixed(1)} KB`);
  });

  it('warns when there are no sections, and says so in "Covered this week"', async () => {
    const issue = await renderer.compile(source({ markdown: 'Only an intro.\n\n### Not a section' }));
    expect(issueWarnings(issue.htmlBytes, issue.content.sections.length)).toEqual(['the issue has no "##" sections, so "Covered this week" is empty']);
    const $ = load(personalise(issue, reader()).html);
    expect($('h2#covered-this-week').nextAll('p').text()).toBe('This issue has no sections.');
  });

  it('puts the boundary at exactly 102 KB', () => {
    expect(issueWarnings(GMAIL_CLIP_BYTES, 3)).toEqual([]);
    expect(issueWarnings(GMAIL_CLIP_BYTES + 1, 3)).toHaveLength(1);
  });
});

describe('IssueRenderer with a broken issue.mjml', () => {
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'broadside-mjml-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const BODY = '<mj-body background-color="#f5f7fa" width="640px">';
  // What MJML 5's strict validation rejects (checked against mjml 5.4): a column outside a
  // section, and an attribute an mj-* tag does not know.
  const breakages: { name: string; marker: string; tag: string; words: RegExp; apply: (s: string) => string }[] = [
    {
      name: 'an <mj-column> directly inside <mj-body>',
      marker: '<mj-column><mj-text>x</mj-text></mj-column>',
      tag: 'mj-column',
      words: /mj-body/,
      apply: (s) => s.replace(BODY, `${BODY}\n<mj-column><mj-text>x</mj-text></mj-column>`),
    },
    {
      name: 'an unknown attribute on <mj-text>',
      marker: 'bogus-attr',
      tag: 'mj-text',
      words: /bogus-attr/,
      apply: (s) => s.replace('<mj-text font-size="13px"', '<mj-text bogus-attr="1" font-size="13px"'),
    },
  ];

  /** A copy of emails/ with issue.mjml broken; returns the renderer and the line of the break. */
  async function brokenRenderer(name: string, apply: (s: string) => string, marker: string) {
    const dir = path.join(tmp, name.replace(/\W+/g, '-'));
    await cp(emailsDir, dir, { recursive: true });
    const file = path.join(dir, 'issue.mjml');
    const original = await readFile(file, 'utf8');
    const broken = apply(original);
    expect(broken).not.toBe(original);
    await writeFile(file, broken);
    const line = broken.split('\n').findIndex((l) => l.includes(marker)) + 1;
    return { r: new IssueRenderer(await loadIssueTemplateFiles(dir), PUBLIC_URL), line };
  }

  async function compileError(r: IssueRenderer): Promise<Error> {
    try {
      await r.compile(source());
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected compile to reject');
  }

  it('compiles the unbroken copy (the breakage, not the copy, is what fails)', async () => {
    const dir = path.join(tmp, 'intact');
    await cp(emailsDir, dir, { recursive: true });
    const r = new IssueRenderer(await loadIssueTemplateFiles(dir), PUBLIC_URL);
    await expect(r.compile(source())).resolves.toHaveProperty('htmlBytes');
  });

  it.each(breakages)('rejects $name with a message naming the tag and line', async ({ name, apply, marker, tag, words }) => {
    const { r, line } = await brokenRenderer(name, apply, marker);
    expect(line).toBeGreaterThan(1);
    const err = await compileError(r);
    expect(err.message).toMatch(new RegExp(`line ${line}\\b`, 'i'));
    expect(err.message).toContain(tag);
    expect(err.message).toMatch(words);
  });

  // With validationLevel 'strict', MJML 5 throws its own ValidationError rather than returning
  // result.errors; compileMjml must still turn it into the AppError.
  it.each(breakages)('rejects $name with AppError 400 invalid_mjml', async ({ name, apply, marker, tag }) => {
    const { r, line } = await brokenRenderer(`${name} apperror`, apply, marker);
    const err = await compileError(r);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).code).toBe('invalid_mjml');
    expect(err.message).toContain(`line ${line} <${tag}>`);
  });
});

describe('the sample issue, personalised (snapshot)', () => {
  let personalised: { html: string; text: string };

  beforeAll(async () => {
    const parsed = parseIssueFile(await readFile(repoFile('sample/issue.md'), 'utf8'));
    const issue = await renderer.compile({ subject: parsed.subject, preheader: parsed.preheader ?? '', markdown: parsed.markdown, slug: 'the-relay-42' });
    const vars = sampleReaderVars(
      { newsletter: 'The Relay', publicUrl: PUBLIC_URL, postalAddress: 'The Relay Ltd, 1 Quay Street, Bristol BS1 4DJ', name: 'Ada Lovelace' },
      new Date('2026-11-12T00:00:00Z'),
    );
    personalised = personalise(issue, vars);
  });

  it('has the fixed sample values in it', () => {
    expect(personalised.text).toContain('The Relay · 12 November 2026\n');
    expect(personalised.text).toContain('\nHi Ada Lovelace,\n');
    expect(personalised.html).toContain(`${PUBLIC_URL}/unsubscribe/sample`);
  });

  it('HTML matches the snapshot', () => {
    expect(personalised.html).toMatchSnapshot();
  });

  it('text part matches the snapshot', () => {
    expect(personalised.text).toMatchSnapshot();
  });
});

describe('parseIssueFile', () => {
  const FILE = [
    '---',
    "subject: 'The Relay #42: “Deliverability” & the \"<50 ms\" | p99 question — don''t panic 📬'",
    'preheader: "Colons: fine; hashes # too"',
    '---',
    '',
    'Intro.',
    '',
    '## Section',
    '',
  ].join('\n');
  const EXPECTED = {
    subject: 'The Relay #42: “Deliverability” & the "<50 ms" | p99 question — don\'t panic 📬',
    preheader: 'Colons: fine; hashes # too',
    markdown: '\nIntro.\n\n## Section\n',
  };

  it('reads a quoted subject with #, : and quotes, and the preheader', () => {
    expect(parseIssueFile(FILE)).toEqual(EXPECTED);
  });

  it('tolerates CRLF line endings', () => {
    expect(parseIssueFile(FILE.replace(/\n/g, '\r\n'))).toEqual(EXPECTED);
  });

  it('tolerates a byte-order mark', () => {
    expect(parseIssueFile(`\uFEFF${FILE}`)).toEqual(EXPECTED);
  });

  it('tolerates a BOM and CRLF together', () => {
    expect(parseIssueFile(`\uFEFF${FILE.replace(/\n/g, '\r\n')}`)).toEqual(EXPECTED);
  });

  it('leaves the preheader out when the file has none', () => {
    const parsed = parseIssueFile('---\nsubject: Plain\n---\nBody\n');
    expect(parsed).toEqual({ subject: 'Plain', preheader: undefined, markdown: 'Body\n' });
  });

  it('keeps a later "---" line (a thematic break) in the Markdown', () => {
    expect(parseIssueFile('---\nsubject: S\n---\nabove\n\n---\n\nbelow\n').markdown).toBe('above\n\n---\n\nbelow\n');
  });

  it('parses the sample issue', async () => {
    const parsed = parseIssueFile(await readFile(repoFile('sample/issue.md'), 'utf8'));
    expect(parsed.subject).toBe('The Relay #42 — “Deliverability” & the <50 ms | p99 question 📬');
    expect(parsed.preheader).toMatch(/^Latency at the inbox edge/);
    expect(parsed.markdown.startsWith('\nGood morning')).toBe(true);
  });

  it.each<[string, string, RegExp]>([
    ['no front matter', '# Just Markdown\n\nText.\n', /must start with front matter/],
    ['front matter that is never closed', '---\nsubject: S\n\nText.\n', /must start with front matter/],
    ['front matter not at the start', 'Text.\n---\nsubject: S\n---\n', /must start with front matter/],
    ['no subject', '---\npreheader: P\n---\nText.\n', /needs a "subject"/],
    ['an empty subject', '---\nsubject: "  "\n---\nText.\n', /needs a "subject"/],
    ['a subject that is not text', '---\nsubject: [a, b]\n---\nText.\n', /needs a "subject"/],
    ['an unknown key', '---\nsubject: S\ntitle: T\n---\nText.\n', /unknown front matter field: title/],
    ['invalid YAML (unclosed quote)', '---\nsubject: "unterminated\n---\nText.\n', /not valid YAML/],
    ['invalid YAML (duplicate key)', '---\nsubject: A\nsubject: B\n---\nText.\n', /not valid YAML/],
    ['a YAML list instead of fields', '---\n- subject\n---\nText.\n', /"key: value" lines/],
    ['a preheader that is not text', '---\nsubject: S\npreheader: [a]\n---\nText.\n', /"preheader" must be text/],
  ])('rejects %s with an IssueFileError', (_, file, message) => {
    let error: unknown;
    try {
      parseIssueFile(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(IssueFileError);
    expect((error as Error).message).toMatch(message);
  });
});
