import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { emailsDir, loadReaderMailTemplates, readerMailKinds, renderReaderMail } from '../../src/rendering/reader-mail.js';

describe('reader mail templates', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('compiles every kind from the bundled emails/, filling every slot', async () => {
    const templates = await loadReaderMailTemplates();
    expect(Object.keys(templates).sort()).toEqual([...readerMailKinds].sort());
    const mail = renderReaderMail(templates, 'data-link', {
      newsletter: 'The Relay',
      greeting: 'Hi Dora,',
      data_url: 'https://news.example.org/data/d.1.x.y',
      expires_minutes: '60',
      postal_address: '1 Test Street',
    });
    expect(mail.subject).toBe('Your data at The Relay: download or erase it');
    expect(mail.html).toContain('href="https://news.example.org/data/d.1.x.y"');
    expect(mail.text).toContain('https://news.example.org/data/d.1.x.y');
    expect(mail.text).toContain('works for 60 minutes');
  });

  it('takes a kind that a branded copy of emails/ lacks (made before it existed) from the bundled one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'broadside-emails-'));
    dirs.push(dir);
    cpSync(emailsDir, dir, { recursive: true });
    rmSync(path.join(dir, 'data-link.mjml'));
    rmSync(path.join(dir, 'data-link.txt'));
    const welcome = path.join(dir, 'welcome.txt');
    writeFileSync(welcome, readFileSync(welcome, 'utf8').replace('Subject: Welcome to {{newsletter}}', 'Subject: Branded welcome to {{newsletter}}'));

    const templates = await loadReaderMailTemplates(dir);
    const vars = {
      newsletter: 'The Relay',
      greeting: 'Hi,',
      archive_url: 'a',
      manage_url: 'm',
      unsubscribe_url: 'u',
      postal_address: 'p',
      data_url: 'd',
      expires_minutes: '60',
    };
    expect(renderReaderMail(templates, 'welcome', vars).subject).toBe('Branded welcome to The Relay');
    expect(renderReaderMail(templates, 'data-link', vars).subject).toBe('Your data at The Relay: download or erase it');
  });
});
