import type { SubscriberRow } from './queries.js';

/** Everything we hold about one reader, for the "download my data" link (GDPR art. 15 and 20). */
export function exportReaderData(r: SubscriberRow) {
  return {
    exportedAt: new Date().toISOString(),
    subscriber: {
      email: r.email,
      name: r.name,
      status: r.status,
      createdAt: r.created_at,
      confirmedAt: r.confirmed_at,
      unsubscribedAt: r.unsubscribed_at,
      bouncedAt: r.bounced_at,
      complainedAt: r.complained_at,
    },
    consent: {
      at: r.consent_at,
      source: r.consent_source,
      ip: r.consent_ip,
      userAgent: r.consent_user_agent,
      confirmedFromIp: r.confirm_ip,
      confirmedWithUserAgent: r.confirm_user_agent,
    },
  };
}
