// `npm run bench`: how long an issue takes to compile (Markdown → sanitised HTML → MJML → reader
// templates) and what personalising it costs per reader. Medians of many runs; the machine's
// other load shows in the spread, so the min and p90 are printed too.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IssueMime } from '../src/delivery/mime-template.js';
import { parseIssueFile } from '../src/issues/issue-file.js';
import { IssueRenderer, loadIssueTemplateFiles, personalise, sampleReaderVars, type CompiledIssue } from '../src/rendering/issue.js';
import { emailsDir } from '../src/rendering/reader-mail.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RENDER_RUNS = Number(process.env.BENCH_RENDER_RUNS ?? 40);
const READERS = Number(process.env.BENCH_READERS ?? 20_000);
const ROUNDS = 7;

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

const renderer = new IssueRenderer(await loadIssueTemplateFiles(emailsDir), 'https://news.example.org');

async function renderTimes(file: string) {
  const source = await readFile(path.join(root, file), 'utf8');
  const input = parseIssueFile(source);
  const issue = { subject: input.subject, preheader: input.preheader ?? '', markdown: input.markdown, slug: 'bench' };
  for (let i = 0; i < 5; i++) await renderer.compile(issue); // warm-up: JIT, MJML's first-use setup
  const times: number[] = [];
  let compiled!: CompiledIssue;
  for (let i = 0; i < RENDER_RUNS; i++) {
    const t = performance.now();
    compiled = await renderer.compile(issue);
    times.push(performance.now() - t);
  }
  return { markdownBytes: Buffer.byteLength(input.markdown), times, compiled };
}

/** Per-reader cost: fill every slot with this reader's values (distinct links and names). */
function personaliseTimes(compiled: CompiledIssue) {
  const base = sampleReaderVars({ newsletter: 'The Relay', publicUrl: 'https://news.example.org', postalAddress: '1 Example Street, Springfield' });
  const readers = Array.from({ length: READERS }, (_, i) => ({
    ...base,
    greeting: i % 3 ? `Hi Reader ${i} <&>,` : 'Hi,',
    unsubscribe_url: `https://news.example.org/unsubscribe/u.${i.toString(36)}.0.abcdefghijklmnopqrstuvwxyz012345`,
    manage_url: `https://news.example.org/manage/m.${i.toString(36)}.0.abcdefghijklmnopqrstuvwxyz012345`,
  }));
  const mime = new IssueMime(
    {
      from: 'The Relay <news@example.org>',
      subject: 'The Relay',
      listId: 'The Relay <the-relay.example.org>',
      feedbackId: 'issue1:send1:newsletter:broadside',
    },
    compiled,
  );
  const fillOnly: number[] = [];
  const wholeMessage: number[] = [];
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let t = performance.now();
    for (const r of readers) {
      const m = personalise(compiled, r);
      sink += m.html.length + m.text.length;
    }
    fillOnly.push(((performance.now() - t) * 1000) / READERS);
    // What a worker really does per reader: the whole MIME message as bytes, both parts
    // quoted-printable, from the issue's pre-encoded parts and the reader's encoded values.
    t = performance.now();
    readers.forEach((r, i) => {
      sink += mime.build({
        to: { address: `reader${i}@example.com`, name: null },
        messageIdHeader: `m${i}@example.org`,
        messageToken: `m${i}`,
        unsubscribeUrl: r.unsubscribe_url,
        vars: r,
      }).length;
    });
    wholeMessage.push(((performance.now() - t) * 1000) / READERS);
  }
  if (sink === 0) throw new Error('unreachable: keeps the loops from being optimised away');
  return { fillOnly, wholeMessage };
}

console.log(`Broadside render benchmark (node ${process.version}, ${RENDER_RUNS} renders, ${READERS.toLocaleString('en')} readers × ${ROUNDS} rounds)\n`);
for (const file of ['sample/issue.md', 'bench/issue-30kb.md']) {
  const { markdownBytes, times, compiled } = await renderTimes(file);
  const sample = personalise(
    compiled,
    sampleReaderVars({ newsletter: 'The Relay', publicUrl: 'https://news.example.org', postalAddress: '1 Example Street, Springfield' }),
  );
  console.log(`${file}: ${kb(markdownBytes)} of Markdown, ${compiled.content.sections.length} sections`);
  console.log(
    `  render (Markdown → MJML → templates): median ${percentile(times, 0.5).toFixed(1)} ms, min ${Math.min(...times).toFixed(1)} ms, p90 ${percentile(times, 0.9).toFixed(1)} ms (target ≤ 150 ms for 30 KB)`,
  );
  console.log(`  size as received: HTML ${kb(Buffer.byteLength(sample.html))} (Gmail clips above 102 KB), text ${kb(Buffer.byteLength(sample.text))}`);
  const p = personaliseTimes(compiled);
  console.log(
    `  personalise per reader: median ${percentile(p.fillOnly, 0.5).toFixed(2)} µs (target ≤ 20 µs); the whole MIME message as bytes ${percentile(p.wholeMessage, 0.5).toFixed(1)} µs\n`,
  );
}
