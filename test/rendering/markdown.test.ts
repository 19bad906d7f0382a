import { describe, expect, it } from '@jest/globals';
import { load } from 'cheerio';
import { renderMarkdown, type IssueContent } from '../../src/rendering/markdown.js';

/** Parses a fragment of rendered HTML (no <html>/<body> added) so assertions see the real DOM. */
const parse = (html: string) => load(html, null, false);

/** All the HTML an issue's Markdown turns into. */
const allHtml = (c: IssueContent) => [c.intro, ...c.sections.map((s) => s.html)].join('\n');

const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** Elements that must never come out of the sanitiser, whatever the editor writes. */
const FORBIDDEN_TAGS = [
  'script',
  'style',
  'iframe',
  'frame',
  'form',
  'input',
  'button',
  'textarea',
  'select',
  'object',
  'embed',
  'svg',
  'math',
  'link',
  'meta',
  'base',
];

/**
 * Everything in a fragment that the allow-list is meant to keep out, described one problem per
 * entry so that a failure says what slipped through.
 */
function unsafeBits(html: string): string[] {
  const $ = parse(html);
  const problems: string[] = [];
  for (const el of $.root().find('*').toArray()) {
    const tag = el.tagName.toLowerCase();
    if (FORBIDDEN_TAGS.includes(tag)) problems.push(`<${tag}> element`);
    for (const [name, value] of Object.entries(el.attribs)) {
      const squashed = value.replace(/[\s\u0000-\u001f]+/g, '').toLowerCase();
      if (/^on/i.test(name)) problems.push(`${name} handler on <${tag}>`);
      if (squashed.includes('javascript:') || squashed.includes('vbscript:')) problems.push(`script URL in ${tag}[${name}]`);
      if (name === 'href' && !/^(?:https?:|mailto:|#)/i.test(value)) problems.push(`href "${value}" on <${tag}>`);
      if (name === 'src' && !/^https?:\/\//i.test(value)) problems.push(`src "${value}" on <${tag}>`);
      if (name === 'style' && !(['td', 'th'].includes(tag) && /^text-align:\s*(?:left|right|center);?$/.test(value))) {
        problems.push(`style "${value}" on <${tag}>`);
      }
    }
    if (tag === 'img' && !el.attribs.src) problems.push('<img> without src');
  }
  return problems;
}

it('unsafeBits (the checker the sanitising table relies on) flags what it should', () => {
  const raw =
    '<script></script><p onclick="x" style="color:red"><a href="java\tscript:x">a</a><img src="/x.png"><img><iframe></iframe></p><td style="text-align:right">ok</td>';
  expect(unsafeBits(raw)).toEqual([
    '<script> element',
    'onclick handler on <p>',
    'style "color:red" on <p>',
    'script URL in a[href]',
    'href "java\tscript:x" on <a>',
    'src "/x.png" on <img>',
    '<img> without src',
    '<iframe> element',
  ]);
});

describe('renderMarkdown: sections', () => {
  const markdown = [
    'Intro paragraph before anything else.',
    '',
    '> ## Quoted heading',
    '> still quoted',
    '',
    '### Minor heading',
    '',
    '- ## Heading inside a list item',
    '',
    '```',
    '## not a heading, code',
    '```',
    '',
    '## First',
    '',
    'Body of the first section.',
    '',
    '### Sub-heading of first',
    '',
    '> ## Quote inside first',
    '',
    '## Second',
    '',
    'Body of the second section.',
  ].join('\n');
  const content = renderMarkdown(markdown);

  it('starts a section at top-level "##" only, not inside a blockquote, list or code, nor at "###"', () => {
    expect(content.sections.map((s) => s.title)).toEqual(['First', 'Second']);
  });

  it('keeps everything before the first "##" as the intro', () => {
    const $ = parse(content.intro);
    expect($('p').first().text()).toBe('Intro paragraph before anything else.');
    expect($('blockquote h2').text()).toBe('Quoted heading');
    expect($('h3').text()).toBe('Minor heading');
    expect($('li h2').text()).toBe('Heading inside a list item');
    expect($('pre code').text()).toBe('## not a heading, code\n');
    expect(content.intro).not.toContain('First');
    // Only section headings carry ids; a quoted or listed h2 is just content.
    expect($('[id]').length).toBe(0);
  });

  it('gives each section its own content, starting with its heading', () => {
    const [first, second] = content.sections;
    const $1 = parse(first!.html);
    expect($1('h2').first().attr('id')).toBe(first!.id);
    expect($1('h2').first().text()).toBe('First');
    expect($1('h3').text()).toBe('Sub-heading of first');
    expect($1('blockquote h2').text()).toBe('Quote inside first');
    expect($1.text()).not.toContain('Body of the second section');
    const $2 = parse(second!.html);
    expect($2('h2').attr('id')).toBe(second!.id);
    expect($2('p').text()).toBe('Body of the second section.');
  });

  it('has an empty intro when the Markdown starts with a section', () => {
    const c = renderMarkdown('## Straight in\n\nText.');
    expect(c.intro).toBe('');
    expect(c.sections).toHaveLength(1);
  });

  it('has no sections when there is no "##"', () => {
    const c = renderMarkdown('Just an intro.\n\n### Small heading\n\n# Big heading');
    expect(c.sections).toEqual([]);
    expect(parse(c.intro)('p').text()).toBe('Just an intro.');
  });

  it.each<[string, string[], string[]]>([
    ['plain words', ['Kestrel 4.0 ships'], ['kestrel-4-0-ships']],
    ['duplicates', ['Dup', 'Dup', 'Dup'], ['dup', 'dup-2', 'dup-3']],
    ["the table of contents' own id", ['Covered this week'], ['covered-this-week-2']],
    ['non-ASCII letters and punctuation', ['Postmasters’ rules — and Bjørnvik’s exception'], ['postmasters-rules-and-bjornviks-exception']],
    ['ampersands', ['Q&A: 10 > 9'], ['q-and-a-10-9']],
  ])('gives slug ids to headings (%s)', (_, headings, ids) => {
    const c = renderMarkdown(headings.map((h) => `## ${h}\n\ntext`).join('\n\n'));
    expect(c.sections.map((s) => s.id)).toEqual(ids);
  });

  it('gives unique, non-empty slug ids to awkward headings, never "covered-this-week"', () => {
    const headings = [
      '📬',
      '🚀',
      '日本語',
      'Covered this week',
      'Covered  This   Week!',
      'Section',
      'section',
      '',
      'Dup',
      'Dup 2',
      'Dup',
      '"quotes" & <b>tags</b>',
    ];
    const c = renderMarkdown(headings.map((h) => `## ${h}\n\ntext`).join('\n\n'));
    const ids = c.sections.map((s) => s.id);
    expect(ids).toHaveLength(headings.length);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(SLUG);
    expect(ids).not.toContain('covered-this-week');
    for (const s of c.sections) expect(parse(s.html)('h2').first().attr('id')).toBe(s.id);
  });

  it('gives an emoji-only heading a non-empty id', () => {
    const [section] = renderMarkdown('## 📬\n\ntext').sections;
    expect(section!.id).toMatch(SLUG);
    expect(section!.title).toBe('📬');
  });

  // A raw-HTML <h2 id> the editor pastes must not duplicate a section's anchor or the table of
  // contents' own id.
  it('keeps ids unique across the whole issue even when the editor pastes <h2 id> HTML', () => {
    const c = renderMarkdown('<h2 id="covered-this-week">Pasted</h2>\n\n<h2 id="real">Also pasted</h2>\n\n## Real\n\ntext');
    const $ = parse(allHtml(c));
    const ids = $('[id]')
      .toArray()
      .map((el) => el.attribs.id);
    expect(ids).not.toContain('covered-this-week');
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('renderMarkdown: section titles', () => {
  it.each<[string, string]>([
    ['Tom & Jerry\'s "best" | <b>bold</b> 📬 — café «ü» …', 'Tom & Jerry\'s "best" | bold 📬 — café «ü» …'],
    ['Why "<50 ms" | p99 matters', 'Why "<50 ms" | p99 matters'],
    ['Q&A: 10 > 9', 'Q&A: 10 > 9'],
    ['A *b* **c** `code` [link](https://example.org) ~~gone~~', 'A b c code link gone'],
    ['AT&amp;T &copy; 2026', 'AT&T © 2026'],
    ['Using `<b>` and \\<i> as text', 'Using <b> and <i> as text'],
    ['Zürich „quotes“ ‹angles› ‘single’', 'Zürich „quotes“ ‹angles› ‘single’'],
    ['Closing hashes ##', 'Closing hashes'],
    ['Heading with <img src=x onerror=alert(1)> HTML', 'Heading with HTML'],
    ['', 'Untitled section'],
  ])('"## %s" has the plain-text title %j', (heading, title) => {
    const [section] = renderMarkdown(`## ${heading}\n\ntext`).sections;
    expect(section!.title).toBe(title);
  });

  it('renders the heading itself as escaped HTML whose text is the title', () => {
    const [a, b] = renderMarkdown('## Why "<50 ms" | p99 matters\n\n## Using `<b>` as text').sections;
    expect(parse(a!.html)('h2').text()).toBe('Why "<50 ms" | p99 matters');
    expect(a!.html).toContain('&lt;50 ms');
    const $b = parse(b!.html);
    expect($b('h2').text()).toBe('Using <b> as text');
    expect($b('h2 b').length).toBe(0);
  });
});

describe('renderMarkdown: sanitising', () => {
  // Each row: what the editor wrote, and text that must still be there (proof the sanitiser
  // removed the dangerous part, not the whole paragraph). `absent` must not be in the text.
  it.each<{ name: string; markdown: string; keeps?: string; absent?: string }>([
    { name: '<script>', markdown: 'before\n\n<script>alert("x")</script>\n\nafter', keeps: 'after', absent: 'alert' },
    { name: 'inline <script>', markdown: 'text <script>alert(1)</script> more', keeps: 'more', absent: 'alert' },
    { name: '<style>', markdown: '<style>p { color: red }</style>\n\nafter', keeps: 'after', absent: 'color' },
    { name: 'onclick', markdown: '<p onclick="alert(1)">click me</p>', keeps: 'click me' },
    { name: 'onerror on an image', markdown: '<img src="https://example.org/x.png" onerror="alert(1)">' },
    { name: 'onmouseover on a link', markdown: '<a href="https://example.org" onmouseover="alert(1)">hover</a>', keeps: 'hover' },
    { name: 'Markdown javascript: link', markdown: '[click](javascript:alert(1))', keeps: 'click' },
    { name: 'Markdown JavaScript: link, mixed case', markdown: '[click](JaVaScRiPt:alert(1))', keeps: 'click' },
    { name: 'Markdown entity-encoded javascript: link', markdown: '[click](jav&#x61;script:alert(1))', keeps: 'click' },
    { name: 'raw <a href="javascript:">', markdown: '<a href="javascript:alert(1)">click</a>', keeps: 'click' },
    { name: 'raw <a href> mixed case', markdown: '<a href="JaVaScRiPt:alert(1)">click</a>', keeps: 'click' },
    { name: 'raw <a href> entity-encoded', markdown: '<a href="jav&#x61;script:alert(1)">click</a>', keeps: 'click' },
    { name: 'raw <a href> decimal entity', markdown: '<a href="&#106;avascript:alert(1)">click</a>', keeps: 'click' },
    { name: 'raw <a href> with leading space and tab', markdown: '<a href=" java\tscript:alert(1)">click</a>', keeps: 'click' },
    { name: 'vbscript: link', markdown: '<a href="vbscript:msgbox(1)">click</a>', keeps: 'click' },
    { name: 'Markdown data: link', markdown: '[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)', keeps: 'data' },
    { name: 'raw data: link', markdown: '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">data</a>', keeps: 'data' },
    { name: '<iframe>', markdown: 'before <iframe src="https://evil.example/"></iframe> after', keeps: 'after' },
    { name: '<form>, <input>, <button>', markdown: '<form action="https://evil.example/"><input name="q"><button>Go</button></form>\n\nafter', keeps: 'after' },
    {
      name: '<object>, <embed>',
      markdown: '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x.swf">\n\nafter',
      keeps: 'after',
    },
    { name: '<svg onload>', markdown: 'before <svg onload="alert(1)"><circle r="1"/></svg> after', keeps: 'after' },
    { name: 'style= on <p>', markdown: '<p style="position:fixed;top:0">styled p</p>', keeps: 'styled p' },
    { name: 'style= on <div>', markdown: '<div style="display:none">hidden div</div>', keeps: 'hidden div' },
    {
      name: 'style= beyond alignment on <td>',
      markdown: '<table><tr><td style="text-align:right;background:url(https://evil.example/)">cell</td></tr></table>',
      keeps: 'cell',
    },
    {
      name: 'a text-align value that is not an alignment',
      markdown: '<table><tr><th style="text-align:expression(alert(1))">head</th></tr></table>',
      keeps: 'head',
    },
    { name: 'relative image', markdown: 'pic ![rel](/images/x.png) end', keeps: 'end' },
    { name: 'protocol-relative image', markdown: 'pic <img src="//evil.example/x.png"> end', keeps: 'end' },
    { name: 'data: image (Markdown)', markdown: 'pic ![d](data:image/png;base64,iVBORw0KGgo=) end', keeps: 'end' },
    { name: 'data: image (raw)', markdown: 'pic <img src="data:image/png;base64,iVBORw0KGgo="> end', keeps: 'end' },
    { name: 'javascript: image', markdown: 'pic <img src="javascript:alert(1)"> end', keeps: 'end' },
  ])('drops $name', ({ markdown, keeps, absent }) => {
    const html = allHtml(renderMarkdown(markdown));
    expect(unsafeBits(html)).toEqual([]);
    const text = parse(html).text();
    if (keeps) expect(text).toContain(keeps);
    if (absent) expect(text).not.toContain(absent);
  });

  it("reduces a table cell's style to its alignment", () => {
    const $ = parse(renderMarkdown('<table><tr><td style="text-align:right;color:red">cell</td></tr></table>').intro);
    expect($('td').attr('style')).toBe('text-align:right');
  });

  it('keeps http(s) and mailto links (and marks them rel=noopener)', () => {
    const $ = parse(
      renderMarkdown(
        '[secure](https://example.com/a?b=1&c=2) [plain](http://example.com/) [mail](mailto:ed@example.org) <a href="https://example.net/raw" title="T">raw</a>',
      ).intro,
    );
    const links = $('a')
      .toArray()
      .map((a) => [a.attribs.href, $(a).text(), a.attribs.rel]);
    expect(links).toEqual([
      ['https://example.com/a?b=1&c=2', 'secure', 'noopener'],
      ['http://example.com/', 'plain', 'noopener'],
      ['mailto:ed@example.org', 'mail', 'noopener'],
      ['https://example.net/raw', 'raw', 'noopener'],
    ]);
    expect($('a').last().attr('title')).toBe('T');
  });

  it('keeps in-page anchors as they are', () => {
    const $ = parse(renderMarkdown('[jump](#first)').intro);
    expect($('a').attr('href')).toBe('#first');
    expect($('a').attr('rel')).toBeUndefined();
  });

  it('keeps images with an https src and their alt text', () => {
    const $ = parse(renderMarkdown('![Soft-bounce chart](https://example.org/images/chart.png "Q3")').intro);
    const img = $('img');
    expect(img.length).toBe(1);
    expect(img.attr('src')).toBe('https://example.org/images/chart.png');
    expect(img.attr('alt')).toBe('Soft-bounce chart');
    expect(img.attr('title')).toBe('Q3');
  });

  it('keeps pipe tables with their column alignment on th and td only', () => {
    const md = '| Provider | Rate | Note |\n|:---|---:|:---:|\n| Northgate & Co | 0.41 % | ok |';
    const $ = parse(renderMarkdown(md).intro);
    expect(
      $('table thead th')
        .toArray()
        .map((th) => [$(th).text(), th.attribs.style]),
    ).toEqual([
      ['Provider', 'text-align:left'],
      ['Rate', 'text-align:right'],
      ['Note', 'text-align:center'],
    ]);
    expect(
      $('table tbody td')
        .toArray()
        .map((td) => [$(td).text(), td.attribs.style]),
    ).toEqual([
      ['Northgate & Co', 'text-align:left'],
      ['0.41 %', 'text-align:right'],
      ['ok', 'text-align:center'],
    ]);
    expect(
      $('[style]')
        .toArray()
        .every((el) => ['td', 'th'].includes(el.tagName)),
    ).toBe(true);
  });

  it('keeps strikethrough', () => {
    const $ = parse(renderMarkdown('was ~~wrong~~ right').intro);
    expect($('s, del').text()).toBe('wrong');
  });

  it('keeps code blocks, with HTML in them as text', () => {
    const $ = parse(renderMarkdown('```js\nconst a = "<b>x</b>" && 1;\n```\n\nand `inline <i>`').intro);
    expect($('pre > code').text()).toBe('const a = "<b>x</b>" && 1;\n');
    expect($('pre b').length).toBe(0);
    expect($('p code').text()).toBe('inline <i>');
  });

  it('turns a bare https URL into a link', () => {
    const $ = parse(renderMarkdown('The note is here: https://example.net/x and more.').intro);
    expect($('a').attr('href')).toBe('https://example.net/x');
    expect($('a').text()).toBe('https://example.net/x');
  });

  // linkify-it 6 (in markdown-it 15) no longer links addresses without a scheme by default.
  it('turns a bare www. address into a link, as GitHub does', () => {
    const $ = parse(renderMarkdown('Visit www.example.org today.').intro);
    expect($('a').attr('href')).toBe('http://www.example.org');
    expect($('a').text()).toBe('www.example.org');
  });

  it('does not link bare domains or file names, which GitHub leaves as text too', () => {
    const $ = parse(renderMarkdown('See README.md, sample/issue.md and example.org.').intro);
    expect($('a')).toHaveLength(0);
  });

  it('leaves {{placeholders}} the editor writes as literal text', () => {
    const c = renderMarkdown('Click {{unsubscribe_url}} or {{ name }} or {{@intro}}.\n\n## About {{greeting}}\n\nSee {{manage_url}}.');
    expect(parse(c.intro).text()).toBe('Click {{unsubscribe_url}} or {{ name }} or {{@intro}}.');
    expect(c.sections[0]!.title).toBe('About {{greeting}}');
    expect(parse(c.sections[0]!.html)('p').text()).toBe('See {{manage_url}}.');
  });
});
