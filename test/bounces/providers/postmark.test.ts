import { createPostmarkWebhook } from '../../../src/bounces/providers/postmark.js';

const TOKEN = 'm2n-0123456789abcdef';
const pm = createPostmarkWebhook({ user: 'postmark', password: 's3cret:with-colon' });
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const auth = basic('postmark', 's3cret:with-colon');

// Shaped like Postmark's documented bounce webhook example.
const bounce = {
  RecordType: 'Bounce',
  MessageStream: 'broadcast',
  ID: 4323372036854,
  Type: 'HardBounce',
  TypeCode: 1,
  Name: 'Hard bounce',
  Tag: 'issue-42',
  MessageID: '883953f4-6105-42a2-a16a-77a8eac79483',
  Metadata: { broadside_message: TOKEN },
  ServerID: 23,
  Description: 'The server was unable to deliver your message (ex: unknown user, mailbox not found).',
  Details: 'smtp;550 5.1.1 The email account that you tried to reach does not exist.',
  Email: 'Jane@Example.com',
  From: 'news@example.net',
  BouncedAt: '2026-11-24T13:28:10.2735393-04:00',
  DumpAvailable: true,
  Inactive: true,
  CanActivate: true,
  Subject: 'Issue 42',
};

describe('Postmark', () => {
  it('maps a hard bounce with credentials, keeping a 64-bit ID exact', () => {
    // Postmark's documented example uses an int64 ID; JSON.parse alone would round it.
    const raw = JSON.stringify({ ...bounce, ID: '@ID@' }).replace('"@ID@"', '4323372036854775807');
    const r = pm.verify(raw, auth);
    expect(r).toEqual({
      ok: true,
      events: [
        {
          provider: 'postmark',
          eventId: '4323372036854775807',
          type: 'hard',
          recipient: 'jane@example.com',
          messageToken: TOKEN,
          providerMessageId: '883953f4-6105-42a2-a16a-77a8eac79483',
          status: '5.1.1',
          diagnostic: bounce.Details,
          occurredAt: new Date('2026-11-24T17:28:10.273Z'),
        },
      ],
    });
  });

  it.each([
    ['SoftBounce', 'soft'],
    ['Transient', 'soft'],
    ['SpamComplaint', 'complaint'],
    ['AutoResponder', 'other'],
    ['DnsError', 'other'],
  ])('maps bounce Type %s to %s', (Type, type) => {
    const r = pm.verify(Buffer.from(JSON.stringify({ ...bounce, Type })), auth);
    expect(r.ok && r.events[0]!.type).toBe(type);
  });

  it('keeps two 64-bit IDs that round to the same number apart', () => {
    const ids = ['9007199254740993', '9007199254740992'];
    const got = ids.map((id) => {
      const r = pm.verify(JSON.stringify({ ...bounce, ID: '@ID@' }).replace('"@ID@"', id), auth);
      return r.ok ? r.events[0]!.eventId : r.message;
    });
    expect(got).toEqual(ids);
  });

  it('maps a SpamComplaint record, finding the token in Headers', () => {
    const complaint = {
      RecordType: 'SpamComplaint',
      ID: 42,
      Type: 'SpamComplaint',
      TypeCode: 512,
      MessageID: 'pm-1',
      Email: 'rick@example.org',
      BouncedAt: '2026-11-24T10:00:00Z',
      Details: 'Test spam complaint details',
      Headers: [{ Name: 'X-Broadside-Message', Value: TOKEN }],
    };
    const r = pm.verify(JSON.stringify(complaint), auth);
    expect(r.ok && r.events).toEqual([
      expect.objectContaining({ eventId: '42', type: 'complaint', recipient: 'rick@example.org', messageToken: TOKEN, status: null }),
    ]);
  });

  it('ignores tokens of the wrong shape and records other record types as no events', () => {
    const r = pm.verify(JSON.stringify({ ...bounce, Metadata: { broadside_message: 'not-a-token' } }), auth);
    expect(r.ok && r.events[0]!.messageToken).toBeNull();
    expect(pm.verify(JSON.stringify({ RecordType: 'Delivery', MessageID: 'x', Recipient: 'a@b.c' }), auth)).toEqual({ ok: true, events: [] });
  });

  it.each([
    ['no header', {}],
    ['wrong password', basic('postmark', 'nope')],
    ['wrong user', basic('other', 's3cret:with-colon')],
    ['a bearer token', { authorization: 'Bearer abc' }],
    ['garbage', { authorization: 'Basic !!!' }],
  ])('refuses %s as unauthorized, before reading the body', (_, headers) => {
    expect(pm.verify('not json at all', headers)).toMatchObject({ ok: false, reason: 'unauthorized' });
  });

  it('accepts the header in any case', () => {
    expect(pm.verify(JSON.stringify(bounce), { authorization: auth.Authorization })).toMatchObject({ ok: true });
  });

  it('calls malformed bodies malformed', () => {
    expect(pm.verify('{"RecordType":', auth)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(pm.verify('[1,2]', auth)).toMatchObject({ ok: false, reason: 'malformed' });
    const { ID: _, ...noId } = bounce;
    expect(pm.verify(JSON.stringify(noId), auth)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('refuses to be built without credentials', () => {
    expect(() => createPostmarkWebhook({ user: '', password: '' })).toThrow();
  });
});
