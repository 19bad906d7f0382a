import { html, type SafeHtml } from '../web/html.js';
import { NAME_MAX_LENGTH } from './email-address.js';
import type { SubscriberRow } from './queries.js';

// The reader-facing pages. Plain HTML forms, no script: they work everywhere, including
// inside the editor's own site (the form can be copied there and posts to /subscribe).

export type SignupValues = { email?: string; name?: string };

export function signupPage(newsletter: string, postalAddress: string | undefined, opts: { error?: string; values?: SignupValues } = {}): SafeHtml {
  const v = opts.values ?? {};
  return html`
<h1>Subscribe to ${newsletter}</h1>
<p>One email a week. Confirm by email, unsubscribe in one click whenever you like.</p>
${opts.error ? html`<p class="error" id="form-error" role="alert">${opts.error}</p>` : ''}
<form method="post" action="/subscribe" novalidate>
  <label for="email">Email address</label>
  <input id="email" name="email" type="email" autocomplete="email" inputmode="email" required maxlength="254"
    value="${v.email ?? ''}" ${opts.error ? html`aria-invalid="true" aria-describedby="form-error"` : ''}>
  <label for="name">Name <span class="hint">(optional)</span></label>
  <input id="name" name="name" type="text" autocomplete="name" maxlength="${NAME_MAX_LENGTH}" value="${v.name ?? ''}">
  <div class="hp" aria-hidden="true">
    <label for="website">Leave this field empty</label>
    <input id="website" name="website" type="text" tabindex="-1" autocomplete="off">
  </div>
  <button type="submit">Subscribe</button>
</form>
<p class="muted">We use your address only to send this newsletter. ${postalAddress ?? ''}</p>`;
}

export function checkInboxPage(): SafeHtml {
  return html`
<h1>Check your inbox</h1>
<p>We have sent you an email with a link to confirm your subscription. Open it and press the button to start receiving the newsletter.</p>
<p class="muted">Nothing there after a few minutes? Look in your spam folder. If you are already subscribed, you will not get another email.</p>`;
}

export function confirmPage(newsletter: string, action: string): SafeHtml {
  return html`
<h1>Confirm your subscription</h1>
<p>Press the button to confirm that you want to receive ${newsletter}.</p>
<form method="post" action="${action}"><button type="submit">Yes, subscribe me</button></form>`;
}

export function confirmedPage(newsletter: string, manageUrl: string, alreadyActive: boolean): SafeHtml {
  return html`
<h1>${alreadyActive ? 'You are already subscribed' : 'You are subscribed'}</h1>
<p>${alreadyActive ? `Your subscription to ${newsletter} was confirmed before; nothing more to do.` : `Welcome to ${newsletter}. A welcome email is on its way, and the next issue will follow.`}</p>
<p><a href="${manageUrl}">Manage your subscription</a></p>`;
}

export function unsubscribePage(newsletter: string, action: string): SafeHtml {
  return html`
<h1>Unsubscribe</h1>
<p>Press the button to stop receiving ${newsletter}. This takes effect at once.</p>
<form method="post" action="${action}"><button type="submit">Unsubscribe me</button></form>`;
}

export function unsubscribedPage(newsletter: string): SafeHtml {
  return html`
<h1>You are unsubscribed</h1>
<p>You will not receive ${newsletter} any more. Changed your mind? You can <a href="/">subscribe again</a>.</p>`;
}

const when = (d: Date | null) => (d ? `${d.toISOString().replace('T', ' ').slice(0, 16)} UTC` : '—');

function subscriptionList(r: SubscriberRow): SafeHtml {
  return html`
<dl>
  <dt>Email</dt><dd>${r.email}</dd>
  <dt>Name</dt><dd>${r.name ?? '—'}</dd>
  <dt>Status</dt><dd>${r.status}</dd>
  <dt>Signed up</dt><dd>${when(r.created_at)}</dd>
  <dt>Confirmed</dt><dd>${when(r.confirmed_at)}</dd>
</dl>`;
}

/**
 * The footer's page (permanent link, so anyone an email was forwarded to may see it): the
 * subscription, leaving at once, and asking for a link to the data, which goes to the reader's
 * own address only.
 */
export function managePage(r: SubscriberRow, links: { unsubscribe: string; dataLink: string }, dataLinkMinutes: number): SafeHtml {
  return html`
<h1>Your subscription</h1>
${subscriptionList(r)}
${r.status === 'active' || r.status === 'pending' ? html`<form method="post" action="${links.unsubscribe}"><button type="submit" class="secondary">Unsubscribe</button></form>` : ''}
<h2>Your data</h2>
<p>To download everything we hold about you, or to erase it, we email a link to your address. It works for ${dataLinkMinutes} minutes. This keeps your data safe from anyone who has this page's link, for example from a forwarded email.</p>
<form method="post" action="${links.dataLink}"><button type="submit">Email me a link to download or erase my data</button></form>`;
}

/** The same whatever happened (mailed, asked too recently, no such reader): nothing to learn from it. */
export function dataLinkRequestedPage(dataLinkMinutes: number, resendMinutes: number): SafeHtml {
  return html`
<h1>Check your inbox</h1>
<p>If this subscription's address can receive mail, a link to your data is on its way to it. The link works for ${dataLinkMinutes} minutes.</p>
<p class="muted">Nothing there after a few minutes? Look in your spam folder. We send at most one such link every ${resendMinutes} minutes.</p>`;
}

/** The old data and erase addresses under the footer's permanent link. */
export function freshLinkNeededPage(managePath: string): SafeHtml {
  return html`
<h1>This needs a fresh link</h1>
<p class="error" role="alert">${FRESH_LINK_MESSAGE}</p>
<p><a href="${managePath}">Go to your subscription page</a></p>`;
}

export const FRESH_LINK_MESSAGE =
  'Downloading or erasing your data needs a fresh link, which we email to your address. Open your subscription page and ask for one.';
export const ERASE_CONFIRMATION_MESSAGE = 'Tick the box to confirm that you understand erasure cannot be undone.';

/** The emailed, short-lived page: the reader's data, to download or erase. */
export function dataPage(r: SubscriberRow, links: { data: string; erase: string }, opts: { error?: string } = {}): SafeHtml {
  return html`
<h1>Your data</h1>
${opts.error ? html`<div role="alert"><p class="error">There is a problem: <a href="#confirm">${opts.error}</a></p></div>` : ''}
${subscriptionList(r)}
<p><a href="${links.data}" download>Download everything we hold about you (JSON)</a></p>
<p class="muted">It includes the consent evidence we keep: when you signed up and confirmed, and from which IP address and browser.</p>
<h2>Erase me</h2>
<p>Deletes your address, name and history. We keep only a one-way fingerprint of the address so that we never mail it again, even if it reappears in an import.</p>
<form method="post" action="${links.erase}" novalidate>
  ${opts.error ? html`<p class="error" id="confirm-error">${opts.error}</p>` : ''}
  <label><input type="checkbox" id="confirm" name="confirm" value="yes" required ${opts.error ? html`aria-invalid="true" aria-describedby="confirm-error"` : ''}> I understand this cannot be undone</label>
  <button type="submit" class="danger">Erase my data</button>
</form>`;
}

export function erasedPage(): SafeHtml {
  return html`
<h1>Your data is erased</h1>
<p>We deleted your address, name and history. You will not hear from us again.</p>`;
}
