import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type Static } from 'typebox';
import { ErrorSchema, IdParams, iso, NullableTimestamp, parseDateParam } from '../http/schemas.js';
import type { Container } from '../container.js';
import { notFound } from '../errors.js';
import { cancel, pause, resume, triggerSend } from './control.js';
import { ratesOf } from './rate-guard.js';
import { sendStatuses } from '../shared/statuses.js';
import { findSendOfIssue, progressOf, type SendRow } from './queries.js';

const SendSchema = Type.Object({
  id: Type.Integer(),
  issueId: Type.Integer(),
  status: Type.Enum(sendStatuses),
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
  scheduledAt: Type.Optional(Type.String({ format: 'date-time', description: 'send at this time instead of now; a time in the past means now' })),
});

const ControlParams = Type.Intersect([IdParams, Type.Object({ action: Type.Enum(['pause', 'resume', 'cancel']) })]);

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** The editor's control over an issue's send: trigger, progress, pause, resume, cancel. */
export function sendApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  async function describe(send: SendRow): Promise<Send> {
    const p = await progressOf(c.pool, send.id);
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
          description: "Creates the issue's one send (now, or at scheduledAt). Triggering again returns the same send and sends nothing twice.",
          params: IdParams,
          body: TriggerBody,
          response: { 202: SendSchema, 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const body = request.body;
        const scheduledAt = parseDateParam(body.scheduledAt, 'scheduledAt') ?? null;
        const { send } = await triggerSend(c, id, scheduledAt, request.log);
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
        const send = await findSendOfIssue(c.pool, request.params.id);
        if (!send) throw notFound('send');
        return describe(send);
      },
    );

    app.post(
      '/api/issues/:id/send/:action',
      {
        schema: {
          tags: ['sends'],
          description: 'pause: no new submissions (within a second); resume: continue, nothing sent twice; cancel: what is still queued becomes cancelled.',
          params: ControlParams,
          response: { 200: SendSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { id, action } = request.params;
        const send =
          action === 'pause' ? await pause(c, id, request.log) : action === 'resume' ? await resume(c, id, request.log) : await cancel(c, id, request.log);
        return describe(send);
      },
    );
  };
}
