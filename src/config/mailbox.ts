/** The parts of a mailbox such as MAIL_FROM: `Name <address>`, `"Name" <address>` or a bare address. */
export function parseMailbox(mailbox: string): { name: string | null; address: string } {
  const m = /^\s*"?([^"<]*?)"?\s*<([^<>\s]+)>\s*$/.exec(mailbox);
  return m ? { name: m[1] || null, address: m[2]! } : { name: null, address: mailbox.trim() };
}
