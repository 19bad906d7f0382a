import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export type ReceivedMail = {
  envelopeFrom: string;
  recipients: string[];
  /**
   * The MAIL FROM and RCPT TO lines exactly as the client sent them. smtp-server decodes an
   * A-label domain (`xn--…`) in `recipients`, so only these show which form went on the wire.
   */
  commands: string[];
  /** The client asked for SMTPUTF8 (RFC 6531) in MAIL FROM. */
  smtpUtf8: boolean;
  /** The DSN parameters (RFC 3461) of MAIL FROM and of the first RCPT TO, as the client sent them. */
  dsn: { ret?: string | null; envid?: string | null; notify?: string[] | null };
  raw: string;
  parsed: ParsedMail;
};

/** A header's unfolded value as sent (mailparser turns some headers into structures). */
export function headerOf(mail: ReceivedMail, name: string): string | undefined {
  const line = mail.parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line
    ?.slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
}

export type SmtpSinkOptions = {
  /**
   * Offer SMTPUTF8 (RFC 6531), as smtp-server does by default. Without it the sink behaves as a
   * relay without the extension: a MAIL FROM or RCPT TO with a non-ASCII byte is refused with
   * 553 5.6.7, the permanent refusal a sender must not take for the reader's fault.
   */
  smtpUtf8?: boolean;
};

const NON_ASCII = /[^\x00-\x7f]/;
const refusal = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

/**
 * An SMTP server on a free loopback port that keeps what it receives in memory, for tests to
 * count and inspect. `rejectRecipient` can make it answer RCPT TO with an error code.
 */
export class SmtpSink {
  readonly messages: ReceivedMail[] = [];
  /** Every MAIL FROM and RCPT TO line received, accepted or not, in order. */
  readonly commands: string[] = [];
  private readonly events = new EventEmitter();
  /** Each session's MAIL FROM and RCPT TO lines of its current transaction, by session id. */
  private readonly sessionCommands = new Map<string, string[]>();
  private server!: SMTPServer;
  port = 0;
  rejectRecipient: (address: string) => { code: number; message: string } | undefined = () => undefined;

  constructor(private readonly options: SmtpSinkOptions = {}) {}

  async start(): Promise<this> {
    const smtpUtf8 = this.options.smtpUtf8 ?? true;
    // The session's last command as received, or a refusal when it needs SMTPUTF8 and did not get it.
    const lastCommand = (session: { id: string; envelope: { smtpUtf8?: boolean } }) => this.sessionCommands.get(session.id)?.at(-1) ?? '';
    const utf8Refusal = (session: { id: string; envelope: { smtpUtf8?: boolean } }) =>
      NON_ASCII.test(lastCommand(session)) && !session.envelope.smtpUtf8
        ? refusal(553, '5.6.7 Non-ASCII addresses are not permitted without SMTPUTF8')
        : undefined;
    this.server = new SMTPServer({
      authOptional: true,
      // Offer the DSN extension (off by default in smtp-server), as Postfix does, to see what we ask for.
      hideDSN: false,
      hideSMTPUTF8: !smtpUtf8,
      disabledCommands: ['STARTTLS'],
      // smtp-server logs each command line as received (debug, tnx "command"): the only place
      // where the undecoded address of MAIL FROM and RCPT TO can be seen.
      logger: commandRecorder((sessionId, line) => {
        if (!/^(MAIL FROM|RCPT TO):/i.test(line)) return;
        this.commands.push(line);
        const list = /^MAIL/i.test(line) ? [] : (this.sessionCommands.get(sessionId) ?? []);
        list.push(line);
        this.sessionCommands.set(sessionId, list);
      }),
      onMailFrom: (_address, session, cb) => cb(utf8Refusal(session) ?? null),
      onRcptTo: (address, session, cb) => {
        const refused = utf8Refusal(session);
        if (refused) return cb(refused);
        const rejection = this.rejectRecipient(address.address);
        if (rejection) return cb(refusal(rejection.code, rejection.message));
        cb();
      },
      onClose: (session) => {
        this.sessionCommands.delete(session.id);
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
              commands: [...(this.sessionCommands.get(session.id) ?? [])],
              smtpUtf8: Boolean((session.envelope as { smtpUtf8?: boolean }).smtpUtf8),
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

/** A bunyan-shaped logger for smtp-server that hands each command line received to `onCommand`. */
function commandRecorder(onCommand: (sessionId: string, line: string) => void) {
  const ignore = () => undefined;
  return {
    trace: ignore,
    info: ignore,
    warn: ignore,
    error: ignore,
    fatal: ignore,
    debug(entry: { tnx?: string; cid?: string }, _message: string, line?: unknown) {
      if (entry?.tnx === 'command' && entry.cid && typeof line === 'string') onCommand(entry.cid, line);
    },
  };
}

/** smtp-server keeps DSN parameters on the envelope (RET, ENVID) and on each recipient (NOTIFY). */
function dsnOf(x: unknown): { ret?: string | null; envid?: string | null; notify?: string[] | null } | undefined {
  return (x as { dsn?: { ret?: string | null; envid?: string | null; notify?: string[] | null } } | undefined)?.dsn;
}
