// RFC 3463 enhanced status codes (class.subject.detail, e.g. 5.1.1) as they appear in bounce
// reports and providers' events.

// Not part of a longer dotted number such as an IP address (10.4.5.6 holds no status).
const ENHANCED = /(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)/;

/** The first RFC 3463 code in `text`, normalised ('5.1.01' → '5.1.1'), e.g. '5.1.1' from 'smtp; 550 5.1.1 no such user'. */
export function statusCode(text: string | null | undefined): string | null {
  const m = text ? ENHANCED.exec(text) : null;
  return m ? `${m[1]}.${Number(m[2])}.${Number(m[3])}` : null;
}

const REPLY_CODE = /(?<![\w.])([245])\d\d(?=[ \t-]|$)/m;

/** The class of a bare SMTP reply code as a status, "other undefined status": 550 → '5.0.0'. */
export const replyClassStatus = (code: number): string => `${Math.floor(code / 100)}.0.0`;

/** '5.0.0' from a bare SMTP reply code in text such as 'smtp; 550 mailbox unavailable'. */
export function replyCodeStatus(text: string | null): string | null {
  const m = text ? REPLY_CODE.exec(text) : null;
  return m ? replyClassStatus(Number(m[1]) * 100) : null;
}
