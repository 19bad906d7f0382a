// "Markdown may use those URLs; the size warning counts them": an issue showing uploaded images
// is warned when they weigh more than 1 MB in all, and when it links one that is not stored.
import { describe, expect, it } from '@jest/globals';
import { useTestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { IMAGES } from '../support/images.js';

const t = useTestContext();
const { api, createIssue } = editor(t);

async function upload(bytes: Buffer): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: '/api/media', headers: { ...t.auth, 'content-type': 'application/octet-stream' }, payload: bytes });
  expect([200, 201]).toContain(res.statusCode);
  return res.json().url as string;
}

/** A PNG of `size` bytes: the tiny one, then bytes a decoder ignores (after its end). */
const pngOf = (size: number) => Buffer.concat([IMAGES.png, Buffer.alloc(size - IMAGES.png.length, 1)]);

const imageWarnings = (warnings: string[]) => warnings.filter((w) => /image/.test(w));

describe('the size warning and uploaded images', () => {
  it('warns when the uploaded images an issue shows weigh more than 1 MB in all, counting each image once', async () => {
    const big = await upload(pngOf(700 * 1024));
    const other = await upload(pngOf(500 * 1024));
    const issue = await createIssue({ subject: 'Heavy', markdown: `![one](${big})\n\n## Again\n\n![one again](${big}) ![two](${other})` });
    expect(imageWarnings(issue.warnings)).toEqual([expect.stringMatching(/^the issue's 2 uploaded images weigh 1\.2 MB in all; .*under 1\.0 MB/)]);
    // The HTML itself is small: the Gmail clipping warning is a different figure.
    expect(issue.warnings.some((w) => /Gmail/.test(w))).toBe(false);
  });

  it('does not warn under the threshold, and does not count images hosted elsewhere', async () => {
    const small = await upload(pngOf(600 * 1024));
    const issue = await createIssue({ subject: 'Light', markdown: `![ours](${small})\n\n## Elsewhere\n\n![theirs](https://images.example.com/huge.png)` });
    expect(imageWarnings(issue.warnings)).toEqual([]);
  });

  it('warns about an image of ours that is not stored, and the warning follows an edit', async () => {
    const missing = `http://broadside.test/media/${'a'.repeat(64)}.png`;
    const issue = await createIssue({ subject: 'Broken', markdown: `![gone](${missing})\n\n## S\n\nText.` });
    expect(imageWarnings(issue.warnings)).toEqual([`the image ${missing} is not stored here: readers will see a broken image`]);
    const stored = await upload(IMAGES.gif);
    const edited = await api('PATCH', `/api/issues/${issue.id}`, { markdown: `![there](${stored})\n\n## S\n\nText.` });
    expect(edited.statusCode).toBe(200);
    expect(imageWarnings(edited.json().warnings)).toEqual([]);
    const read = await api('GET', `/api/issues/${issue.id}`);
    expect(imageWarnings(read.json().warnings)).toEqual([]);
  });
});
