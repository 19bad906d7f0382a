import path from 'node:path';
import { AppError } from '../errors.js';

export type MjmlProblem = { line: number; tag: string; message: string };
type MjmlError = { line: number; tagName: string; message: string };

function invalid(errors: MjmlError[]): AppError {
  const problems: MjmlProblem[] = errors.map((e) => ({ line: e.line, tag: e.tagName, message: e.message }));
  return new AppError(400, 'invalid_mjml', `MJML is invalid: ${problems.map((p) => `line ${p.line} <${p.tag}>: ${p.message}`).join('; ')}`, problems);
}

/**
 * Compiles MJML to HTML with strict validation. Called once per template (at start) or per
 * issue (when it is saved), never per reader. Placeholders such as {{unsubscribe_url}} pass
 * through untouched for `fill` to substitute.
 */
export async function compileMjml(source: string, filePath: string): Promise<string> {
  // Loaded on first use: MJML weighs about 55 MB, and a worker that only delivers issues
  // (compiled when they were saved) never needs it.
  const { default: mjml2html } = await import('mjml');
  let result: Awaited<ReturnType<typeof mjml2html>>;
  try {
    result = await mjml2html(source, {
      validationLevel: 'strict',
      filePath,
      keepComments: false,
      // MJML 5 ignores <mj-include> unless asked; allow it only from the template's own folder.
      ignoreIncludes: false,
      includePath: path.dirname(filePath),
      // No web-font links: they leak the reader's IP to a third party and we use system fonts.
      fonts: {},
    });
  } catch (err) {
    // Strict validation throws (MJML's ValidationError, with the list in `errors`).
    const errors = (err as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) throw invalid(errors as MjmlError[]);
    throw err;
  }
  if (result.errors.length > 0) throw invalid(result.errors);
  return collapseIndentation(result.html);
}

// A <pre> block (its whitespace is content) or a run of whitespace that holds a line break.
const PRE_OR_BREAK = /<pre[\s>][\s\S]*?<\/pre>|[ \t]*\n\s*/gi;

/**
 * MJML indents its output for people to read; every reader would download that indentation.
 * Outside <pre>, a run of whitespace renders as one space whatever it holds, so each run that
 * holds a line break becomes that one line break: the page looks the same, about 9 % smaller,
 * and no line grows longer.
 */
export function collapseIndentation(html: string): string {
  return html.replace(PRE_OR_BREAK, (m) => (m[0] === '<' ? m : '\n'));
}
