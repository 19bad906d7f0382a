// The words a row's status can be, shared by the domain, the API schemas, metrics and the CLI.
// A leaf module: it imports nothing, so anything may import it without a circle. The words are
// the glossary's (CONTEXT.md) and the Postgres enums' (migrations/).

export const subscriberStatuses = ['pending', 'active', 'unsubscribed', 'bounced', 'complained'] as const;
export type SubscriberStatus = (typeof subscriberStatuses)[number];

/** How a reader came to agree: the sign-up form, the editor's API, or an import. */
export const consentSources = ['form', 'api', 'import'] as const;
export type ConsentSource = (typeof consentSources)[number];

export const sendStatuses = ['scheduled', 'sending', 'paused', 'cancelled', 'done'] as const;
export type SendStatus = (typeof sendStatuses)[number];

/**
 * An issue's one state, derived from its row and its send's (see src/issues/issue-state.ts):
 * a draft; published to the archive without a send; or its send's state, `sent` for a done send.
 */
export const issueStates = ['draft', 'published', 'scheduled', 'sending', 'paused', 'sent', 'cancelled'] as const;
export type IssueState = (typeof issueStates)[number];

export const messageStatuses = ['queued', 'sending', 'submitted', 'failed', 'bounced', 'cancelled'] as const;
export type MessageStatus = (typeof messageStatuses)[number];

/**
 * How one deliver job ended: its message's new status, or `not_claimed` when there was nothing
 * for this job to do (already submitted, claimed by a live worker, or its send paused or
 * cancelled).
 */
export type DeliverOutcome = Extract<MessageStatus, 'submitted' | 'cancelled' | 'bounced' | 'failed'> | 'not_claimed';

/** What a bounce record says happened: a hard or soft bounce, a complaint, or something else a report told us. */
export const bounceTypes = ['hard', 'soft', 'complaint', 'other'] as const;
export type BounceType = (typeof bounceTypes)[number];

/** Where a bounce record came from: a refusal at submission, the bounce listener (DSN, ARF), or a provider's webhook. */
export const bounceSources = ['smtp', 'dsn', 'arf', 'ses', 'postmark', 'sendgrid', 'mailgun'] as const;
export type BounceSource = (typeof bounceSources)[number];
