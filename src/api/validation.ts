import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

function make(options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, ...options });
  addFormats(ajv);
  return ajv;
}

/**
 * Bodies are validated strictly: a number where a string belongs is a 400, not coerced.
 * URL parts (params, query string) are text by nature, so they are coerced to the schema's types.
 */
const compilers = {
  body: make({ coerceTypes: false, removeAdditional: true }),
  params: make({ coerceTypes: true }),
  querystring: make({ coerceTypes: true, removeAdditional: false }),
  headers: make({ coerceTypes: true }),
};

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = compilers[(httpPart ?? 'body') as keyof typeof compilers] ?? compilers.body;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
};
