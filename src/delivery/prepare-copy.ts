// One path for every copy of an issue: a reader's copy in a send and an editor's test copy are
// built by the same code, from the same prepared MIME, so what an editor tests is byte for byte
// what readers get, apart from the values that are each reader's own and the test marker.
import { createHash, randomBytes } from 'node:crypto';
import slugify from '@sindresorhus/slugify';
import { parseMailbox } from '../config/mailbox.js';
import type { Container } from '../container.js';
import type { Pool } from '../db/pool.js';
import { findIssue, type IssueRow } from '../issues/queries.js';
import { formatIssueDate, greetingFor, type IssueReaderVars } from '../rendering/issue.js';
import { verpAddress } from '../sending/message-tokens.js';
import { findSend } from '../sending/queries.js';
import { transportAddress } from '../subscribers/email-address.js';
import { CopyBuffers } from './copy-buffers.js';
import type { RawMail } from './mailer.js';
import { encodeHeaderText, formatAddress, IssueMime } from './mime-template.js';
import type { Claim } from './queries.js';

/** What building a copy needs: the settings, the reader's links and the message tokens. */
export type CopyDeps = Pick<Container, 'config' | 'links' | 'messageTokens'>;

/** The parts of an issue a copy is made of. */
export type IssueForCopies = Pick<IssueRow, 'id' | 'subject' | 'revision' | 'html_template' | 'text_template'>;

/** The values of a copy that are the same for every reader of a send (or of a test): encoded once. */
export type IssueWideVars = Pick<IssueReaderVars, 'newsletter' | 'issue_date' | 'postal_address'>;

/** The reader's own values of a copy. */
export type ReaderVars = Omit<IssueReaderVars, keyof IssueWideVars>;

/** A copy ready for the mailer (`sendRaw`), with the Message-ID it carries. */
export type Copy = RawMail & { messageIdHeader: string; to: { address: string; smtpUtf8: boolean } };

/** The reader a copy of a send is for: the message and its reader (see Claim). */
export type CopyReader = { messageId: number; subscriberId: number; email: string; name: string | null };

/**
 * What a relay that offers DSN (RFC 3461) should send back: a report on failure only (a delay
 * warning is no bounce), with the original's headers only (they carry our token; the whole issue
 * would only fill inbound_reports), and our token as the envelope id, which the report repeats as
 * Original-Envelope-Id: one more way back to the message.
 */
const dsnFor = (token: string): RawMail['dsn'] => ({ ret: 'HDRS', envid: token, notify: 'FAILURE' });

/** The same boundary for every preparation of one issue revision: a test copy and a reader's copy alike. */
const boundaryId = (issue: IssueForCopies) => createHash('sha256').update(`broadside:issue:${issue.id}:${issue.revision}`).digest('hex').slice(0, 24);

/**
 * Prepares an issue's MIME once for a send (or a test) and builds each copy from it: the MIME
 * with the issue-wide values encoded in, then per copy the reader's values, the Message-ID, the
 * token and the envelope.
 */
export class CopyMaker {
  readonly sender: { name: string | null; address: string };
  /** The Message-ID domain: the sender's, in its wire form. */
  readonly domain: string;
  private readonly listId: string;

  constructor(private readonly c: CopyDeps) {
    const sender = parseMailbox(c.config.mailFrom);
    // MAIL FROM, From and the Message-ID domain in their wire form too (an IDN sender domain in ASCII).
    this.sender = { ...sender, address: transportAddress(sender.address).address };
    this.domain = this.sender.address.split('@')[1] ?? 'localhost';
    const listLabel = slugify(c.config.newsletterName) || 'newsletter';
    this.listId = `${encodeHeaderText(c.config.newsletterName)} <${listLabel}.${this.domain}>`;
  }

  /** The issue's MIME for the copies of one send; the issue date is the day the send started. */
  forSend(issue: IssueForCopies, send: { id: number; started_at: Date | null }): IssueMime {
    // Gmail's feedback loop groups complaints by these fields; the last one names the sender.
    return this.mime(issue, `issue${issue.id}:send${send.id}:newsletter:broadside`, send.started_at ?? new Date(), false);
  }

  /**
   * The issue's MIME for test copies: the same as a send's but for the marker (a subject starting
   * `[Test] `, an `X-Broadside-Test: yes` header, `test` in the Feedback-ID for the send's id);
   * the issue date is its publication's, or today's.
   */
  forTest(issue: IssueForCopies & Pick<IssueRow, 'published_at'>): IssueMime {
    return this.mime({ ...issue, subject: `[Test] ${issue.subject}` }, `issue${issue.id}:test:newsletter:broadside`, issue.published_at ?? new Date(), true);
  }

  /**
   * A reader's copy: their values, the message's token in Message-ID and the envelope (VERP when
   * BOUNCE_DOMAIN is set); built in memory from `memory` when given (see CopyBuffers).
   */
  readerCopy(mime: IssueMime, reader: CopyReader, memory?: CopyBuffers): Copy {
    const { c } = this;
    const token = c.messageTokens.sign(reader.messageId);
    const unsubscribeUrl = c.links.unsubscribe(reader.subscriberId);
    const vars: ReaderVars = { greeting: greetingFor(reader.name), unsubscribe_url: unsubscribeUrl, manage_url: c.links.manage(reader.subscriberId) };
    const envelopeFrom = c.config.bounceDomain ? verpAddress(token, c.config.bounceDomain) : this.sender.address;
    return { ...this.build(mime, reader.email, reader.name, `${token}@${this.domain}`, token, vars, envelopeFrom, memory), dsn: dsnFor(token) };
  }

  /**
   * A test copy: the sample reader's values (`vars`, links that lead nowhere), a Message-ID of its
   * own, no message token (it belongs to no send), and the sender as the envelope's.
   */
  testCopy(mime: IssueMime, to: string, vars: ReaderVars): Copy {
    return this.build(mime, to, null, `test-${randomBytes(12).toString('hex')}@${this.domain}`, null, vars, this.sender.address);
  }

  private build(
    mime: IssueMime,
    email: string,
    name: string | null,
    messageIdHeader: string,
    token: string | null,
    vars: ReaderVars,
    envelopeFrom: string,
    memory?: CopyBuffers,
  ): Copy {
    // The typed local part and the domain in ASCII, in RCPT TO and in To alike.
    const to = transportAddress(email);
    const raw = mime.build(
      {
        to: { address: to.address, name },
        messageIdHeader,
        messageToken: token,
        unsubscribeUrl: vars.unsubscribe_url,
        vars,
      },
      memory,
    );
    return { envelope: { from: envelopeFrom, to: to.address }, raw, messageIdHeader, to };
  }

  private mime(issue: IssueForCopies, feedbackId: string, date: Date, test: boolean): IssueMime {
    const { config } = this.c;
    return new IssueMime(
      { from: formatAddress(this.sender.address, this.sender.name), subject: issue.subject, listId: this.listId, feedbackId, test },
      { html: issue.html_template, text: issue.text_template },
      { newsletter: config.newsletterName, issue_date: formatIssueDate(date), postal_address: config.postalAddress ?? '' } satisfies IssueWideVars,
      { boundaryId: boundaryId(issue) },
    );
  }
}

const CACHED_SENDS = 8;

/**
 * The copies of the sends a worker process delivers: each send's MIME is prepared once per process
 * and kept, keyed by send and issue revision (a correction between two runs of a send, e.g. before
 * its failed messages are retried, makes a new revision and so is never sent from a stale copy).
 */
export class SendCopies {
  readonly maker: CopyMaker;
  private readonly prepared = new Map<string, Promise<IssueMime>>();
  /** The memory copies are built in, used again for the next copies once one is accepted (see accepted). */
  private readonly memory = new CopyBuffers();

  constructor(
    private readonly pool: Pool,
    deps: CopyDeps,
  ) {
    this.maker = new CopyMaker(deps);
  }

  /** The claimed message's copy, for a reader with an address (the claim's `email`). */
  async copyFor(claim: Claim & { email: string }): Promise<Copy> {
    const mime = await this.prepare(claim);
    return this.maker.readerCopy(mime, { messageId: claim.id, subscriberId: claim.subscriber_id, email: claim.email, name: claim.name }, this.memory);
  }

  /**
   * The relay accepted the copy (answered its data): its memory serves the next copies. Only then:
   * after a failure the connection may still hold the copy, so it is left to the garbage collector.
   */
  accepted(copy: Copy): void {
    this.memory.give(copy.raw);
  }

  private prepare(claim: Pick<Claim, 'send_id' | 'issue_id' | 'issue_revision'>): Promise<IssueMime> {
    // Corrections are refused while a send is under way, so one revision serves a whole run. Should
    // one land between the claim and the load, this entry holds the newer form: never an older one.
    const key = `${claim.send_id}:${claim.issue_revision}`;
    let p = this.prepared.get(key);
    if (!p) {
      p = this.load(claim);
      // A failed load (Postgres away) is not remembered.
      p.catch(() => this.prepared.delete(key));
      this.prepared.set(key, p);
      if (this.prepared.size > CACHED_SENDS) this.prepared.delete(this.prepared.keys().next().value!);
    }
    return p;
  }

  private async load(claim: Pick<Claim, 'send_id' | 'issue_id'>): Promise<IssueMime> {
    const [issue, send] = await Promise.all([findIssue(this.pool, claim.issue_id), findSend(this.pool, claim.send_id)]);
    if (!issue || !send) throw new Error(`issue ${claim.issue_id} or send ${claim.send_id} is gone`);
    return this.maker.forSend(issue, send);
  }
}
