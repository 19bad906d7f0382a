import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { parseMailbox } from '../config/mailbox.js';
import type { Container } from '../container.js';
import { ErrorSchema } from '../http/schemas.js';

const NewsletterSchema = Type.Object({
  name: Type.String({ description: 'NEWSLETTER_NAME (by default the name in MAIL_FROM)' }),
  from: Type.Object(
    {
      name: Type.Union([Type.String(), Type.Null()], { description: 'the display name, null when MAIL_FROM is a bare address' }),
      address: Type.String(),
    },
    { description: "the From of every copy (MAIL_FROM): what a reader's inbox shows as the sender" },
  ),
});

/** What the newsletter is called and who its mail is from, for a client showing an inbox line. */
export function newsletterRoutes(c: Container): FastifyPluginAsyncTypebox {
  const from = parseMailbox(c.config.mailFrom);
  return async (app) => {
    app.get(
      '/api/newsletter',
      {
        schema: {
          tags: ['issues'],
          description: "The newsletter's name and the sender (From) of its mail, from the configuration.",
          response: { 200: NewsletterSchema, 503: ErrorSchema },
        },
      },
      async () => ({ name: c.config.newsletterName, from }),
    );
  };
}
