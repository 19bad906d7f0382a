import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { bytes } from '../shared/format.js';
import type { ApiClient } from './api-client.js';
import { CliFailure } from './errors.js';
import { findIssue } from './find-issue.js';
import { json, note, print } from './io.js';

/** What POST /api/media answers. */
type Media = { url: string; hash: string; type: string; bytes: number; width: number; height: number };

/**
 * `broadside upload <file>`: sends an image to the media store and prints its public URL, alone
 * on stdout (for `$(broadside upload x.png)` and for pasting into Markdown); what was stored goes
 * to stderr. The service reads the type from the bytes: the file's name does not matter.
 */
export async function uploadFile(api: ApiClient, file: string, opts: { json: boolean }): Promise<number> {
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new CliFailure(`${file} is not a file`);
    size = s.size;
  } catch (err) {
    if (err instanceof CliFailure) throw err;
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const stream = createReadStream(file);
  let readError: Error | undefined;
  stream.on('error', (err) => (readError = err));
  // Content-Length lets the service refuse a file over its limit before it is sent.
  const media = await api
    .request<Media>('POST', '/api/media', { stream, contentType: 'application/octet-stream', contentLength: size, timeoutMs: 0 })
    .catch((err: unknown) => {
      if (readError) throw new CliFailure(`cannot read ${file}: ${(readError as NodeJS.ErrnoException).code ?? readError.message}`);
      throw err;
    });
  if (opts.json) {
    json(media);
    return 0;
  }
  print(media.url);
  note(`${media.type}, ${media.width}×${media.height}, ${bytes(media.bytes)}: use it in Markdown as ![description](${media.url})`);
  return 0;
}

/**
 * `broadside preview <issue>`: asks for a signed preview link and prints it alone on stdout. The
 * link opens the issue's preview in a browser (desktop and phone width, HTML and text) without
 * the API token, until it expires.
 */
export async function printPreviewLink(api: ApiClient, ref: string, opts: { json: boolean }): Promise<number> {
  const issue = await findIssue(api, ref);
  const link = await api.request<{ url: string; expiresAt: string }>('POST', `/api/issues/${issue.id}/preview-link`);
  if (opts.json) {
    json(link);
    return 0;
  }
  print(link.url);
  note(
    `Preview of issue ${issue.id} (${issue.subject}); the link works until ${link.expiresAt} and needs no token: share it only with whoever may read the draft.`,
  );
  return 0;
}
