import type { ApiClient } from './api-client.js';
import type { Issue } from './api-types.js';
import { bytes, count, percent, when } from '../shared/format.js';
import { json, print } from './io.js';
import { findIssue } from './find-issue.js';
import { existingSend } from './send.js';
import { inDoubt, pace } from './send-progress.js';

/** The issue and its send's counts, once. */
export async function showStatus(api: ApiClient, ref: string, opts: { json: boolean }): Promise<number> {
  const { markdown: _, ...issue }: Issue = await findIssue(api, ref);
  const send = (await existingSend(api, issue)) ?? null;
  if (opts.json) {
    json({ issue, send });
    return 0;
  }
  print(`Issue ${issue.id}: ${issue.subject}`);
  const scheduled = issue.scheduledAt ? ` (starts ${when(issue.scheduledAt)})` : '';
  print(`  state:       ${issue.state}${scheduled}${issue.publishedAt ? ` (in the archive since ${when(issue.publishedAt)})` : ''}`);
  print(`  slug:        ${issue.slug}`);
  print(`  web version: ${issue.webUrl}`);
  print(`  HTML:        ${bytes(issue.htmlBytes)} (${issue.sections.length} section${issue.sections.length === 1 ? '' : 's'})`);
  for (const w of issue.warnings) print(`  warning:     ${w}`);
  if (!send) {
    print('Send: none yet');
    return 0;
  }
  print(`Send ${send.id}: ${send.status}`);
  if (send.status === 'scheduled') print(`  starts:      ${when(send.scheduledAt)}`);
  if (send.startedAt) print(`  started:     ${when(send.startedAt)}`);
  if (send.finishedAt) print(`  finished:    ${when(send.finishedAt)}`);
  print(`  readers:     ${count(send.total)}${send.fanoutDone ? '' : ' so far (still counting the audience)'}`);
  print(
    `  queued ${count(send.queued)} · sending ${count(send.sending)} · submitted ${count(send.submitted)} · failed ${count(send.failed)} · bounced ${count(send.bounced)} · cancelled ${count(send.cancelled)}${inDoubt(send)}`,
  );
  print(
    `  bounces:     ${count(send.bounced)} hard (${percent(send.bounceRate)}) · ${count(send.softBounces)} soft · complaints ${count(send.complaints)} (${percent(send.complaintRate)})`,
  );
  if (send.rateAlert) {
    print(`  alert:       ${send.rateAlert.message} (${when(send.rateAlert.at)})${send.rateAlert.waived ? '; resumed by the editor' : ''}`);
  }
  if (send.status === 'sending') print(`  rate:        ${pace(send)}`);
  return 0;
}
