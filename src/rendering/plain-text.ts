import { compile } from 'html-to-text';

const HEADING = { uppercase: false, leadingLineBreaks: 2, trailingLineBreaks: 1 };

/**
 * Sanitised issue HTML to the text part: wrapped at 76 columns for terminal mail clients, links
 * inline as `text [url]` (the URL alone when it is the text), lists with dashes, tables as
 * columns. Compiled once; converting is then a walk over the HTML.
 */
export const htmlToPlainText: (html: string) => string = compile({
  wordwrap: 76,
  selectors: [
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true, noAnchorUrl: true } },
    { selector: 'img', format: 'image' },
    { selector: 'ul', options: { itemPrefix: ' - ' } },
    { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false } },
    { selector: 'h1', options: HEADING },
    { selector: 'h2', options: HEADING },
    { selector: 'h3', options: HEADING },
    { selector: 'h4', options: HEADING },
    { selector: 'h5', options: HEADING },
    { selector: 'h6', options: HEADING },
  ],
});

/** A heading for the text part: the title over a rule of its own length (capped at 76). */
export function underlined(title: string, rule: '=' | '-'): string {
  return `${title}\n${rule.repeat(Math.min(76, Math.max(3, [...title].length)))}`;
}
