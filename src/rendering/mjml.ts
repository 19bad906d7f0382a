import path from 'node:path';
import mjml2html from 'mjml';
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
  return result.html;
}
