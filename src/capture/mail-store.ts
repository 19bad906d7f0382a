import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleParser } from 'mailparser';

export type CapturedSummary = { id: string; subject: string; to: string; from: string; date: string };
export type CapturedMessage = CapturedSummary & { text: string; html: string | undefined; headers: [string, string][]; raw: string };

const ID = /^\d{14}-[0-9a-f]{8}$/;

export function isCaptureId(id: string): boolean {
  return ID.test(id);
}

/** Captured messages, newest first. */
export async function listCaptured(dir: string, limit = 200): Promise<CapturedSummary[]> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const ids = files.filter((f) => f.endsWith('.eml')).map((f) => f.slice(0, -4)).filter(isCaptureId).sort().reverse().slice(0, limit);
  return Promise.all(ids.map(async (id) => summarise(id, (await readCaptured(dir, id))!)));
}

export async function readCaptured(dir: string, id: string): Promise<CapturedMessage | undefined> {
  if (!isCaptureId(id)) return undefined;
  let raw: string;
  try {
    raw = await readFile(path.join(dir, `${id}.eml`), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = await simpleParser(raw);
  const headers = parsed.headerLines.map((h) => {
    const colon = h.line.indexOf(':');
    return [h.line.slice(0, colon), h.line.slice(colon + 1).trim()] as [string, string];
  });
  return {
    id,
    subject: parsed.subject ?? '(no subject)',
    from: parsed.from?.text ?? '',
    to: Array.isArray(parsed.to) ? parsed.to.map((a) => a.text).join(', ') : (parsed.to?.text ?? ''),
    date: (parsed.date ?? new Date(Number(id.slice(0, 14)))).toISOString(),
    text: parsed.text ?? '',
    html: parsed.html || undefined,
    headers,
    raw,
  };
}

function summarise(id: string, m: CapturedMessage): CapturedSummary {
  return { id, subject: m.subject, to: m.to, from: m.from, date: m.date };
}
