import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import cliProgress from 'cli-progress';
import type { ApiClient } from './api-client.js';
import type { ImportReport } from './api-types.js';
import { ApiError, CliFailure } from './errors.js';
import { bytes, clock, count } from '../shared/format.js';
import { interactive, json, note, print } from './io.js';

export type ImportOptions = { json: boolean; intervalSeconds: number };

/** How many rejected rows the text summary lists (--json gives all the service reported). */
const LISTED = 20;

type UploadView = { update(sent: number): void; stop(): void };

function uploadView(file: string, size: number, intervalSeconds: number): UploadView {
  if (interactive()) {
    const bar = new cliProgress.SingleBar({
      format: 'uploading [{bar}] {percentage}% {sent} of {size}',
      stream: process.stdout,
      barsize: 30,
      hideCursor: true,
      gracefulExit: true,
    });
    bar.start(size, 0, { sent: bytes(0), size: bytes(size) });
    return {
      update: (sent) => bar.update(sent, { sent: bytes(sent), size: bytes(size) }),
      stop: () => bar.stop(),
    };
  }
  let lastAt: number | undefined;
  return {
    update(sent) {
      // The first line once the upload has begun: a service that is not there gets no "uploading".
      if (lastAt === undefined) {
        lastAt = Date.now();
        print(`${clock()} uploading ${file} (${bytes(size)})`);
        return;
      }
      if (Date.now() - lastAt < intervalSeconds * 1000) return;
      lastAt = Date.now();
      print(`${clock()} uploaded ${bytes(sent)} of ${bytes(size)} (${size ? Math.floor((sent / size) * 100) : 100}%)`);
    },
    stop: () => undefined,
  };
}

function printReport(file: string, r: ImportReport, partial = false): void {
  const out = partial ? note : print;
  out(
    `${partial ? 'Before the error, from' : 'Imported'} ${file}: ${count(r.rows)} row${r.rows === 1 ? '' : 's'} read, ${count(r.accepted)} added, ${count(r.rejected)} rejected.`,
  );
  const reasons = Object.entries(r.rejectedByReason);
  if (reasons.length) out(`  rejected: ${reasons.map(([reason, n]) => `${reason} ${count(n)}`).join(', ')}`);
  for (const x of r.rejections.slice(0, LISTED)) out(`  line ${x.line}: ${x.email || '(empty)'}: ${x.message} (${x.reason})`);
  const unlisted = r.rejected - Math.min(r.rejections.length, LISTED);
  if (unlisted > 0) out(`  … ${count(unlisted)} more rejected row${unlisted === 1 ? '' : 's'}${r.rejections.length > LISTED ? ' (--json lists them)' : ''}`);
}

/** Streams a CSV file to the subscriber import, with its upload's progress, and prints the service's report. */
export async function importFile(api: ApiClient, file: string, opts: ImportOptions): Promise<number> {
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw Object.assign(new Error(), { code: 'not a file' });
    size = s.size;
  } catch (err) {
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const source = createReadStream(file);
  let readError: Error | undefined;
  let sent = 0;
  const view = uploadView(file, size, opts.intervalSeconds);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      view.update(sent);
      cb(null, chunk);
    },
  });
  source.on('error', (err) => {
    readError = err;
    counter.destroy(err);
  });
  source.pipe(counter);
  let report: ImportReport;
  try {
    // No time limit: a large list takes as long as it takes; the service answers at the end.
    report = await api.request<ImportReport>('POST', '/api/subscribers/import', { stream: counter, contentType: 'text/csv', timeoutMs: 0 });
  } catch (err) {
    view.stop();
    if (readError) throw new CliFailure(`cannot read ${file}: ${(readError as NodeJS.ErrnoException).code ?? readError.message}`);
    const partial = err instanceof ApiError ? (err.details as { partial?: ImportReport } | undefined)?.partial : undefined;
    if (partial) printReport(file, partial, true);
    throw err;
  } finally {
    source.destroy();
  }
  view.stop();
  if (opts.json) json(report);
  else printReport(file, report);
  return 0;
}
