// The memory a worker's copies are built in (src/delivery/copy-buffers.ts): used again only once
// given back, never handed out twice at once, and copies built in it are the same bytes.
import { describe, expect, it } from '@jest/globals';
import { CopyBuffers } from '../../src/delivery/copy-buffers.js';
import { IssueMime } from '../../src/delivery/mime-template.js';
import { parseTemplate } from '../../src/rendering/template.js';

describe('CopyBuffers', () => {
  it('hands out a buffer of the size asked for, and its memory again once it is given back', () => {
    const memory = new CopyBuffers();
    const a = memory.take(90_000);
    expect(a.length).toBe(90_000);
    memory.give(a);
    expect(memory.kept).toBe(1);
    const b = memory.take(90_500);
    expect(b.length).toBe(90_500);
    expect(b.buffer).toBe(a.buffer);
    expect(memory.kept).toBe(0);
  });

  it('never hands out memory that is out: not before it is given back, and once however often it is given', () => {
    const memory = new CopyBuffers();
    const a = memory.take(1000);
    const b = memory.take(1000);
    expect(b.buffer).not.toBe(a.buffer);
    memory.give(a);
    memory.give(a);
    expect(memory.kept).toBe(1);
    const c = memory.take(1000);
    const d = memory.take(1000);
    expect(c.buffer).toBe(a.buffer);
    expect(new Set([a.buffer, b.buffer, d.buffer]).size).toBe(3);
  });

  it('ignores a buffer it did not hand out, and does not reuse memory too small for the copy', () => {
    const memory = new CopyBuffers();
    memory.give(Buffer.alloc(100_000));
    memory.give(Buffer.from('small'));
    expect(memory.kept).toBe(0);
    const small = memory.take(1000);
    memory.give(small);
    const large = memory.take(50_000);
    expect(large.buffer).not.toBe(small.buffer);
    expect(large.length).toBe(50_000);
    expect(memory.kept).toBe(1);
  });

  it('keeps at most as many pieces as it was told to', () => {
    const memory = new CopyBuffers(2);
    const out = [memory.take(10), memory.take(10), memory.take(10)];
    for (const b of out) memory.give(b);
    expect(memory.kept).toBe(2);
  });

  it('copies built in reused memory are byte for byte those built in fresh memory', () => {
    const mime = new IssueMime(
      { from: 'News <news@example.org>', subject: 'Issue', listId: 'News <news.example.org>', feedbackId: 'f' },
      {
        html: parseTemplate('<p>{{greeting}}</p><a href="{{unsubscribe_url}}">x</a>'.repeat(200), true),
        text: parseTemplate('{{greeting}}\n{{unsubscribe_url}}\n'.repeat(200), false),
      },
      {},
      { boundaryId: 'b' },
    );
    const copy = (name: string) => ({
      to: { address: `${name}@example.com`, name },
      messageIdHeader: `${name}@example.org`,
      messageToken: name,
      unsubscribeUrl: `https://example.org/u/${name}`,
      vars: { greeting: `Hi ${name},`, unsubscribe_url: `https://example.org/u/${name}` },
      date: new Date('2026-12-03T00:00:00Z'),
    });
    const memory = new CopyBuffers();
    // A long reader first, then shorter ones in the same memory: no byte of an earlier copy remains.
    let previous: Buffer | undefined;
    for (const name of ['a-very-long-reader-name-indeed', 'bo', 'carla', 'd']) {
      const built = mime.build(copy(name), memory);
      expect(built.equals(mime.build(copy(name)))).toBe(true);
      if (previous) expect(built.buffer).toBe(previous.buffer);
      memory.give(built);
      previous = built;
    }
  });
});
