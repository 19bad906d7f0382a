import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type Static } from 'typebox';
import { CursorQuery, idPage } from '../http/keyset-page.js';
import { ErrorSchema, IdParams, iso, NullableTimestamp, parseDateParam } from '../http/schemas.js';
import type { Container } from '../container.js';
import { notFound } from '../errors.js';
import { issueStateSql } from '../issues/issue-state.js';
import { cancel, pause, reschedule, resume, retryFailed, triggerSend, unschedule } from './control.js';
import { ratesOf } from './rate-guard.js';
import { issueStates, messageStatuses, sendStatuses, type IssueState } from '../shared/statuses.js';
import { audienceOf, findIssueExists, findSendOfIssue, findSendWithProgress, listMessages, progressOf, type Progress, type SendRow } from './queries.js';

const SendSchema = Type.Object({
  id: Type.Integer(),
  issueId: Type.Integer(),
  status: Type.Enum(sendStatuses),
  issueState: Type.Enum(issueStates, {
    description: "the issue's state after this request (`draft` once a send that mailed nobody was cancelled: the send is then gone)",
  }),
  scheduledAt: Type.String({ format: 'date-time' }),
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  fanoutDone: Type.Boolean({ description: 'every reader of the audience has a message row; until then total grows' }),
  total: Type.Integer({ description: 'the audience: message rows written' }),
  queued: Type.Integer(),
  sending: Type.Integer(),
  submitted: Type.Integer({ description: 'accepted by the SMTP relay (250)' }),
  sent: Type.Integer({ description: 'the same as submitted' }),
  failed: Type.Integer(),
  bounced: Type.Integer({ description: 'hard-bounced messages: refused at submission, or reported later (DSN, provider)' }),
  cancelled: Type.Integer(),
  inDoubt: Type.Integer({
    description:
      'of the cancelled: messages whose worker died while submitting them, in a send cancelled before they could be tried again; the relay may have accepted them',
  }),
  softBounces: Type.Integer({ description: 'soft bounces recorded against this send' }),
  complaints: Type.Integer({ description: 'readers who marked this issue as spam' }),
  bounceRate: Type.Number({ description: 'bounced / (submitted + bounced + failed), from 0 to 1' }),
  complaintRate: Type.Number({ description: 'complaints / (submitted + bounced + failed), from 0 to 1' }),
  rateAlert: Type.Union(
    [
      Type.Object({
        message: Type.String({ description: 'which rate passed which threshold (BOUNCE_RATE_THRESHOLD, COMPLAINT_RATE_THRESHOLD)' }),
        at: Type.String({ format: 'date-time' }),
        waived: Type.Boolean({ description: 'the editor resumed the send after the alert' }),
      }),
      Type.Null(),
    ],
    { description: 'set once when a rate passed its threshold during the send; the send was then paused unless PAUSE_ON_HIGH_RATES=false' },
  ),
  ratePerSecond: Type.Number({ description: 'submissions per second over the last minute' }),
  etaSeconds: Type.Union([Type.Integer(), Type.Null()], { description: 'time left at the current rate, once the audience is known' }),
});
/** A send's progress as the API answers it (the CLI reads this type too). */
export type Send = Static<typeof SendSchema>;

const TriggerBody = Type.Object({
  scheduledAt: Type.Optional(
    Type.String({ format: 'date-time', description: 'send at this time instead of now; it must be in the future (400 scheduled_in_past otherwise)' }),
  ),
  expectAudience: Type.Optional(
    Type.Integer({
      minimum: 0,
      description:
        'the audience the editor was shown (GET /api/issues/:id/audience): when the audience now differs by more than max(10 readers, 1 %), 409 audience_changed with the new count in error.details.audience, and nothing is sent. Not checked when the issue already has its send (the answer is that send)',
    }),
  ),
});

const RescheduleBody = Type.Object({
  scheduledAt: Type.String({ format: 'date-time', description: 'the new time; it must be in the future' }),
});

const UnscheduledSchema = Type.Object({
  issueId: Type.Integer(),
  sendId: Type.Integer({ description: 'the send taken back (it no longer exists)' }),
  scheduledAt: Type.String({ format: 'date-time', description: 'when it would have started' }),
  issueState: Type.Enum(['draft', 'published'] as const, { description: 'as the issue was before the send: a draft, or published if it was' }),
});

const RetrySchema = Type.Object({
  queued: Type.Integer({ description: 'failed messages queued again (those of readers still active)' }),
  send: SendSchema,
});

const MessagesQuery = Type.Object({
  status: Type.Optional(Type.Enum(messageStatuses, { description: 'only messages in this status (failed, bounced, …)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  cursor: Type.Optional(CursorQuery),
});

const MessageSchema = Type.Object({
  id: Type.Integer(),
  subscriberId: Type.Integer(),
  email: Type.Union([Type.String(), Type.Null()], { description: "the reader's address; null once the reader was erased" }),
  status: Type.Enum(messageStatuses),
  inDoubt: Type.Boolean({ description: 'cancelled while its worker died submitting it: the relay may have it' }),
  attempts: Type.Integer({ description: 'times a worker claimed it' }),
  smtpResponse: Type.Union([Type.String(), Type.Null()], { description: "the relay's last answer (or why it could not be sent)" }),
  submittedAt: NullableTimestamp,
  updatedAt: Type.String({ format: 'date-time' }),
});

const AudienceSchema = Type.Object({
  audience: Type.Integer({
    description:
      'readers a send of this issue would mail if it started now: active readers, less those the issue already reached (after a cancelled send: those a new send would reach)',
  }),
});

const ControlParams = Type.Intersect([IdParams, Type.Object({ action: Type.Enum(['pause', 'resume', 'cancel']) })]);

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** The editor's control over an issue's send: trigger, progress, pause, resume, cancel. */
export function sendApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  async function issueStateOf(issueId: number): Promise<IssueState> {
    const { rows } = await c.pool.query<{ state: IssueState }>(`SELECT ${issueStateSql('i')} AS state FROM issues i WHERE i.id = $1::bigint`, [issueId]);
    return rows[0]?.state ?? 'draft';
  }

  /** A send's progress; a send forgotten by its cancel (it mailed nobody) is described as it was, every message cancelled. */
  async function describe(send: SendRow, forgotten = false, progress?: Progress): Promise<Send> {
    const p: Progress = forgotten
      ? { queued: 0, sending: 0, submitted: 0, failed: 0, bounced: 0, cancelled: send.total, lastMinute: 0, inDoubt: 0, complaints: 0, softBounces: 0 }
      : (progress ?? (await progressOf(c.pool, send.id)));
    const rates = ratesOf(p, c.config);
    const running = send.status === 'sending' && send.started_at;
    // Over the last minute, or since the start when the send is younger than that.
    const seconds = running ? Math.min(60, Math.max(1, (Date.now() - send.started_at!.getTime()) / 1000)) : 60;
    const rate = running ? p.lastMinute / seconds : 0;
    const remaining = p.queued + p.sending;
    return {
      id: send.id,
      issueId: send.issue_id,
      status: send.status,
      issueState: await issueStateOf(send.issue_id),
      scheduledAt: send.scheduled_at.toISOString(),
      startedAt: iso(send.started_at),
      finishedAt: iso(send.finished_at),
      fanoutDone: send.fanout_done,
      total: send.total,
      queued: p.queued,
      sending: p.sending,
      submitted: p.submitted,
      sent: p.submitted,
      failed: p.failed,
      bounced: p.bounced,
      cancelled: p.cancelled,
      inDoubt: p.inDoubt,
      softBounces: p.softBounces,
      complaints: p.complaints,
      bounceRate: round(rates.bounceRate),
      complaintRate: round(rates.complaintRate),
      rateAlert: send.rate_alert ? { message: send.rate_alert, at: send.rate_alert_at!.toISOString(), waived: send.rate_alert_waived } : null,
      ratePerSecond: Math.round(rate * 10) / 10,
      etaSeconds: running && send.fanout_done && rate > 0 ? Math.ceil(remaining / rate) : null,
    };
  }

  return async (app) => {
    app.post(
      '/api/issues/:id/send',
      {
        // The body is optional: a bare POST sends now.
        preValidation: async (request) => {
          request.body ??= {};
        },
        schema: {
          tags: ['sends'],
          description:
            "Creates the issue's one send (now, or at a future scheduledAt). Triggering again returns the same send and sends nothing twice; after a cancel, it sends again, now, to only the readers the cancelled send did not reach.",
          params: IdParams,
          body: TriggerBody,
          response: { 202: SendSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const body = request.body;
        const scheduledAt = parseDateParam(body.scheduledAt, 'scheduledAt');
        const { send } = await triggerSend(c, id, { scheduledAt, expectAudience: body.expectAudience }, request.log);
        return reply
          .code(202)
          .header('location', `/api/issues/${id}/send`)
          .send(await describe(send));
      },
    );

    app.get(
      '/api/issues/:id/send',
      {
        schema: {
          tags: ['sends'],
          description: 'Progress, counted from the message rows, with the current rate and an estimate of the time left.',
          params: IdParams,
          response: { 200: SendSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        const seen = await findSendWithProgress(c.pool, request.params.id);
        if (!seen) throw notFound('send');
        return describe(seen.send, false, seen.progress);
      },
    );

    app.patch(
      '/api/issues/:id/send',
      {
        schema: {
          tags: ['sends'],
          description: 'Moves a scheduled send to another future time (its delayed job moves with it). 409 not_scheduled once it has started.',
          params: IdParams,
          body: RescheduleBody,
          response: { 200: SendSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const at = parseDateParam(request.body.scheduledAt, 'scheduledAt')!;
        return describe(await reschedule(c, request.params.id, at, request.log));
      },
    );

    app.delete(
      '/api/issues/:id/send',
      {
        schema: {
          tags: ['sends'],
          description:
            'Takes a scheduled send back before it starts: the send and its delayed job are gone, nothing was mailed, and the issue is as it was before: a draft again (editable, deletable), or published if it was. 409 not_scheduled once it has started.',
          params: IdParams,
          response: { 200: UnscheduledSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const send = await unschedule(c, request.params.id, request.log);
        // A scheduled send has not published the issue: it is as it was before, a draft or published.
        const issueState = (await issueStateOf(send.issue_id)) === 'published' ? ('published' as const) : ('draft' as const);
        return { issueId: send.issue_id, sendId: send.id, scheduledAt: send.scheduled_at.toISOString(), issueState };
      },
    );

    app.post(
      '/api/issues/:id/send/retry-failed',
      {
        schema: {
          tags: ['sends'],
          description:
            "Queues again the send's failed messages whose readers are still active (never bounced, complained, unsubscribed or erased ones) and sends them, with the same crash safety as any message; a done send is sending again. 409 not_started (scheduled), send_cancelled (send the issue again instead).",
          params: IdParams,
          response: { 200: RetrySchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { send, queued } = await retryFailed(c, request.params.id, request.log);
        return { queued, send: await describe(send) };
      },
    );

    app.get(
      '/api/issues/:id/send/messages',
      {
        schema: {
          tags: ['sends'],
          description:
            "The send's messages in id order, optionally of one status (failed, bounced…), with each reader's address and the relay's answer; keyset-paged.",
          params: IdParams,
          querystring: MessagesQuery,
          response: {
            200: Type.Object({ items: Type.Array(MessageSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (request) => {
        const send = await findSendOfIssue(c.pool, request.params.id);
        if (!send) throw notFound((await findIssueExists(c.pool, request.params.id)) ? 'send' : 'issue');
        const q = request.query;
        const page = await idPage({ cursor: q.cursor, limit: q.limit ?? 100 }, (keyset) =>
          listMessages(c.pool, { sendId: send.id, status: q.status, afterId: keyset.from, limit: keyset.rows }),
        );
        return {
          items: page.items.map((m) => ({
            id: m.id,
            subscriberId: m.subscriber_id,
            email: m.email,
            status: m.status,
            inDoubt: m.in_doubt,
            attempts: m.attempts,
            smtpResponse: m.smtp_response,
            submittedAt: iso(m.submitted_at),
            updatedAt: m.updated_at.toISOString(),
          })),
          nextCursor: page.nextCursor,
        };
      },
    );

    app.get(
      '/api/issues/:id/audience',
      {
        schema: {
          tags: ['sends'],
          description: 'How many readers a send of this issue would mail if it started now (what to show before asking the editor to confirm).',
          params: IdParams,
          response: { 200: AudienceSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        if (!(await findIssueExists(c.pool, request.params.id))) throw notFound('issue');
        return { audience: await audienceOf(c.pool, request.params.id) };
      },
    );

    app.post(
      '/api/issues/:id/send/:action',
      {
        schema: {
          tags: ['sends'],
          description:
            'pause: no new submissions (within a second); resume: continue, nothing sent twice; cancel: what is still queued becomes cancelled (a send that mailed nobody is then gone and its issue a draft again).',
          params: ControlParams,
          response: { 200: SendSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { id, action } = request.params;
        if (action === 'cancel') {
          const { send, forgotten } = await cancel(c, id, request.log);
          return describe({ ...send, status: 'cancelled' }, forgotten);
        }
        return describe(action === 'pause' ? await pause(c, id, request.log) : await resume(c, id, request.log));
      },
    );
  };
}
