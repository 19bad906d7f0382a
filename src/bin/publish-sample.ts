// `npm run sample`: publishes the sample issue (sample/issue.md) to a running service through
// its HTTP API, as an editor would, and sends a test copy (to SAMPLE_TO; by default to the
// MAIL_FROM address when a relay is configured, else to editor@example.com, which the capture
// server keeps), so a newcomer sees a real issue in the archive and in the capture inbox.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, plainly } from '../boot.js';
import { parseMailbox } from '../config/mailbox.js';
import { parseIssueFile } from '../issues/issue-file.js';

const file = process.argv[2] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../sample/issue.md');
const { config } = await plainly(() => loadConfig());
const base = process.env.BROADSIDE_URL ?? `http://127.0.0.1:${config.port}`;

async function call(method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${config.apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    console.error(`No service answers at ${base}. Start it first with "npm start" (or set BROADSIDE_URL).`);
    process.exit(1);
  }
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) {
    console.error(`${method} ${route} failed with ${res.status}: ${JSON.stringify(json)}`);
    process.exit(1);
  }
  return json;
}

const { id: _id, ...input } = parseIssueFile(await readFile(file, 'utf8'));
const issue = await call('POST', '/api/issues', input);
await call('POST', `/api/issues/${issue.id}/publish`);
const editor = process.env.SAMPLE_TO ?? (config.smtpUrl ? parseMailbox(config.mailFrom).address : 'editor@example.com');
const test = await call('POST', `/api/issues/${issue.id}/test`, { to: [editor] });
console.log(`Published issue ${issue.id} "${issue.subject}" (HTML ${((issue.htmlBytes as number) / 1024).toFixed(1)} KB)`);
console.log(`  web version: ${issue.webUrl}`);
console.log(`  archive:     ${config.publicUrl}/issues   feed: ${config.publicUrl}/feed.xml`);
console.log(`  test copy to ${editor}: ${JSON.stringify(test.results)}`);
if (!config.smtpUrl) console.log(`  captured mail: ${config.publicUrl}/admin/mail (any user name, the API token as password)`);
