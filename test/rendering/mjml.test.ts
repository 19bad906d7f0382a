import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { collapseIndentation, compileMjml } from '../../src/rendering/mjml.js';
import { emailsDir } from '../../src/rendering/reader-mail.js';

describe('collapseIndentation', () => {
  it('turns each whitespace run that holds a line break into one line break', () => {
    expect(collapseIndentation('<div>\n    <p>a</p>  \n\n\t  <p>b</p>\n</div>')).toBe('<div>\n<p>a</p>\n<p>b</p>\n</div>');
  });

  it('leaves spaces within a line alone', () => {
    expect(collapseIndentation('<p>two  spaces and\ta tab</p>')).toBe('<p>two  spaces and\ta tab</p>');
  });

  it('keeps every character of a <pre> block, whatever its case or attributes', () => {
    const pre = '<pre style="x">\n  indented\n\n    code\n</pre>';
    const upper = '<PRE>\n  a\n</PRE>';
    expect(collapseIndentation(`<div>\n  ${pre}\n  ${upper}\n</div>`)).toBe(`<div>\n${pre}\n${upper}\n</div>`);
  });

  it('does not take <pretty> or <p> for <pre>', () => {
    expect(collapseIndentation('<pretty>\n  a\n</pretty>')).toBe('<pretty>\na\n</pretty>');
  });

  it('is applied to what compileMjml returns: no line of the output starts with indentation outside <pre>', async () => {
    const html = await compileMjml(
      '<mjml><mj-body><mj-section><mj-column><mj-text><p>Hello</p><pre>  keep\n    this</pre></mj-text></mj-column></mj-section></mj-body></mjml>',
      path.join(emailsDir, 'issue.mjml'), // an existing file: MJML resolves includes from it
    );
    expect(html).toContain('<pre>  keep\n    this</pre>');
    const outsidePre = html.replace(/<pre[\s>][\s\S]*?<\/pre>/g, '');
    expect(outsidePre).not.toMatch(/\n[ \t]/);
  });
});
