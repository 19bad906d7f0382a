import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Container } from '../container.js';
import { AppError, notFound, PayloadTooLarge } from '../errors.js';
import { allowLongUpload } from '../http/body-deadline.js';
import { limitedBody } from '../http/limited-body.js';
import { bytes as formatBytes } from '../shared/format.js';
import { MEDIA_NAME } from '../shared/media-name.js';
import { ErrorSchema } from '../http/schemas.js';
import { IMAGE_TYPES, type ImageExt, sniffImage } from './image-type.js';

/** The public address of a stored image. */
export const mediaUrl = (publicUrl: string, name: string): string => `${publicUrl}/media/${name}`;

const MediaSchema = Type.Object({
  url: Type.String({ description: 'the public address: PUBLIC_URL/media/<hash>.<ext>, for the Markdown' }),
  hash: Type.String({ description: 'SHA-256 of the bytes, hex' }),
  type: Type.Enum(Object.values(IMAGE_TYPES), { description: 'sniffed from the bytes' }),
  bytes: Type.Integer(),
  width: Type.Integer(),
  height: Type.Integer(),
});

const MediaParams = Type.Object({ name: Type.String({ maxLength: 100 }) });

const NOT_AN_IMAGE = 'the body is not a PNG, JPEG, GIF or WebP image (read from its bytes; SVG and other formats are refused)';

// Served images are immutable (their name is their hash): cached for a year by browsers and
// proxies. As a document opened on its own, an image may run and load nothing.
const SERVED_HEADERS = {
  'cache-control': 'public, max-age=31536000, immutable',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
  'cross-origin-resource-policy': 'cross-origin',
};

const tooLarge = (max: number) => new PayloadTooLarge(`the image is larger than ${formatBytes(max)} (${max} bytes)`);

/** The whole body, read through a counter that fails once it passes `max` bytes (nothing past it is kept). */
async function readAll(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of limitedBody(body, max, 'image')) chunks.push(chunk as Buffer);
  } catch (err) {
    if (err instanceof PayloadTooLarge) throw tooLarge(max);
    throw err;
  }
  return Buffer.concat(chunks);
}

/** POST /api/media: the editor's image uploads (register inside the editor's bearer scope). */
export function mediaApiRoutes(c: Container): FastifyPluginAsyncTypebox {
  const max = c.config.mediaMaxBytes;
  return async (app) => {
    // The image arrives as the raw request body, whatever Content-Type the client names: the
    // type is read from the bytes. The body is read through a counter that stops at the limit.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => {
      done(new AppError(415, 'unsupported_media_type', 'send the image itself as the request body (for example Content-Type: image/png), not a form'));
    });
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    app.post(
      '/api/media',
      {
        schema: {
          tags: ['media'],
          consumes: ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/octet-stream'],
          description:
            `Stores an image (PNG, JPEG, GIF or WebP, at most MEDIA_MAX_BYTES, now ${max} bytes) sent as the raw request body. ` +
            'The type is read from the bytes, never from a name or the Content-Type. Stored once per content: ' +
            '201 when stored now, 200 when the same bytes were stored before (same URL).',
          response: { 200: MediaSchema, 201: MediaSchema, 400: ErrorSchema, 413: ErrorSchema, 415: ErrorSchema },
        },
      },
      async (request, reply) => {
        // A declared length over the limit is refused before a byte of the body is kept. The
        // connection is not closed on the client while it sends (it would see a broken pipe, not
        // the 413): Node reads the rest and drops it, within HTTP_BODY_TIMEOUT_SECONDS.
        const declared = Number(request.headers['content-length']);
        if (Number.isFinite(declared) && declared > max) throw tooLarge(max);
        const body = request.body as Readable | undefined;
        // The editor's token has been checked (onRequest): a photo of a few MB over a slow
        // connection may take longer than HTTP_BODY_TIMEOUT_SECONDS, as a CSV import may.
        allowLongUpload(request.raw);
        let bytes: Buffer;
        try {
          bytes = body && typeof body.pipe === 'function' ? await readAll(body, max) : Buffer.alloc(0);
        } catch (err) {
          // Past the limit while streaming: the rest is read and dropped (nothing more is kept),
          // so that the client gets its 413 and the connection its next request.
          if (err instanceof PayloadTooLarge) request.raw.resume();
          throw err;
        }
        if (bytes.length === 0) throw new AppError(400, 'empty_body', "the request body is empty: send the image's bytes");
        const image = sniffImage(bytes);
        if (!image) throw new AppError(415, 'unsupported_media_type', NOT_AN_IMAGE);
        const hash = createHash('sha256').update(bytes).digest('hex');
        const name = `${hash}.${image.ext}`;
        const { created } = await c.media.put(name, bytes);
        request.log.info({ media: name, bytes: bytes.length, created }, created ? 'image stored' : 'image already stored');
        return reply.code(created ? 201 : 200).send({
          url: mediaUrl(c.config.publicUrl, name),
          hash,
          type: image.type,
          bytes: bytes.length,
          width: image.width,
          height: image.height,
        });
      },
    );
  };
}

/** GET /media/<hash>.<ext>: the stored images, public (mail clients load them). */
export function mediaRoutes(c: Container): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/media/:name',
      {
        schema: {
          tags: ['media'],
          description: 'A stored image, immutable, cached for a year. Any other name is a 404.',
          params: MediaParams,
          response: {
            200: {
              description: 'the image, with the type read from its bytes at upload',
              content: Object.fromEntries(Object.values(IMAGE_TYPES).map((t) => [t, { schema: Type.String({ format: 'binary' }) }])),
            },
            304: Type.Null({ description: 'not modified (If-None-Match)' }),
            404: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        const m = MEDIA_NAME.exec(name);
        if (!m) throw notFound('media');
        const stored = await c.media.get(name);
        if (!stored) throw notFound('media');
        const etag = `"${m[1]}"`;
        reply.headers(SERVED_HEADERS).header('etag', etag);
        const match = request.headers['if-none-match'];
        if (match?.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')) return reply.code(304).send(null as never);
        reply.type(IMAGE_TYPES[m[2] as ImageExt]).header('content-length', stored.bytes);
        // HEAD: the headers alone, the file unopened. (Fastify's HEAD handling keeps the
        // Content-Length set above for a stream, and drains it: an empty one.)
        if (request.method === 'HEAD') return reply.send(Readable.from([]) as never);
        return reply.send(stored.stream() as never);
      },
    );
  };
}
