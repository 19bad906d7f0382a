import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export type ReceivedMail = {
  envelopeFrom: string;
  recipients: string[];
  /** The DSN parameters (RFC 3461) of MAIL FROM and of the first RCPT TO, as the client sent them. */
  dsn: { ret?: string | null; envid?: string | null; notify?: string[] | null };
  raw: string;
  parsed: ParsedMail;
};

/** A header's unfolded value as sent (mailparser turns some headers into structures). */
export function headerOf(mail: ReceivedMail, name: string): string | undefined {
  const line = mail.parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line?.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
}

/**
 * An SMTP server on a free loopback port that keeps what it receives in memory, for tests to
 * count and inspect. `rejectRecipient` can make it answer RCPT TO with an error code.
 */
export class SmtpSink {
  readonly messages: ReceivedMail[] = [];
  private readonly events = new EventEmitter();
  private server!: SMTPServer;
  port = 0;
  rejectRecipient: (address: string) => { code: number; message: string } | undefined = () => undefined;

  async start(): Promise<this> {
    this.server = new SMTPServer({
      authOptional: true,
      // Offer the DSN extension (off by default in smtp-server), as Postfix does, to see what we ask for.
      hideDSN: false,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo: (address, _session, cb) => {
        const rejection = this.rejectRecipient(address.address);
        if (rejection) return cb(Object.assign(new Error(rejection.message), { responseCode: rejection.code }));
        cb();
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw).then((parsed) => {
            const mail: ReceivedMail = {
              envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              recipients: session.envelope.rcptTo.map((r) => r.address),
              dsn: { ...dsnOf(session.envelope), notify: dsnOf(session.envelope.rcptTo[0])?.notify ?? null },
              raw,
              parsed,
            };
            this.messages.push(mail);
            this.events.emit('mail', mail);
            cb();
          }, cb);
        });
      },
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  to(address: string): ReceivedMail[] {
    return this.messages.filter((m) => m.recipients.includes(address));
  }

  /** Resolves with the first message (already received or arriving) that matches. */
  waitFor(match: (m: ReceivedMail) => boolean, timeoutMs = 10_000): Promise<ReceivedMail> {
    const found = this.messages.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('mail', onMail);
        reject(new Error(`no matching mail within ${timeoutMs} ms (received ${this.messages.length})`));
      }, timeoutMs);
      const onMail = (m: ReceivedMail) => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.events.off('mail', onMail);
        resolve(m);
      };
      this.events.on('mail', onMail);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** smtp-server keeps DSN parameters on the envelope (RET, ENVID) and on each recipient (NOTIFY). */
function dsnOf(x: unknown): { ret?: string | null; envid?: string | null; notify?: string[] | null } | undefined {
  return (x as { dsn?: { ret?: string | null; envid?: string | null; notify?: string[] | null } } | undefined)?.dsn;
}
