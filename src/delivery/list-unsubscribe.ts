/**
 * The headers that let a mailbox provider show its own "Unsubscribe" button: RFC 2369's
 * `List-Unsubscribe` with the reader's unsubscribe link, and RFC 8058's `List-Unsubscribe-Post`,
 * which says a bare POST to that link unsubscribes at once (our /unsubscribe/<token> does). Every
 * mail a reader can leave from carries both: each issue, its test copy, the welcome mail.
 */
export type ListUnsubscribeHeaders = { 'List-Unsubscribe': string; 'List-Unsubscribe-Post': string };

/**
 * The link is written into the header as it is (PUBLIC_URL and a token): nothing in it may end
 * the `<…>` or the header line, or a reader's mail would carry headers nobody wrote.
 */
export function listUnsubscribeHeaders(unsubscribeUrl: string): ListUnsubscribeHeaders {
  if (/[<>\r\n]/.test(unsubscribeUrl)) throw new Error(`an unsubscribe link cannot hold <, >, CR or LF: ${JSON.stringify(unsubscribeUrl)}`);
  return {
    'List-Unsubscribe': `<${unsubscribeUrl}>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}
