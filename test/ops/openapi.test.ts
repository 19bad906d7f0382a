import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import { registerOpenApi } from '../../src/api/openapi.js';
import { ErrorSchema } from '../../src/http/schemas.js';
import { pathOf, useTestContext } from '../support/context.js';
import { addReaders } from '../support/readers.js';

type Route = { method: string; url: string };
type Operation = {
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: object }> }>;
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string }[];
};
type Spec = {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, unknown> };
};

/**
 * Every route each Fastify instance registers, as Fastify itself reports them: Fastify announces
 * a new instance on this channel before any plugin or route is added, so an onRoute hook added
 * here sees the whole app, including routes added after this test was written.
 */
const routesOf = new Map<FastifyInstance, Route[]>();
const onInit = (message: unknown) => {
  const { fastify } = message as { fastify: FastifyInstance };
  const routes: Route[] = [];
  routesOf.set(fastify, routes);
  fastify.addHook('onRoute', (r: RouteOptions) => {
    for (const method of [r.method].flat()) routes.push({ method: method.toUpperCase(), url: r.url });
  });
};
subscribe('fastify.initialization', onInit);
afterAll(() => {
  unsubscribe('fastify.initialization', onInit);
});

const t = useTestContext();

const isApi = (r: Route) => (r.url === '/api' || r.url.startsWith('/api/')) && r.method !== 'HEAD';
/** Fastify's `/api/issues/:id` as OpenAPI writes it, `/api/issues/{id}`. */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

/** What is missing from the spec for these routes; empty when each is fully documented. */
function problemsOf(spec: Spec, routes: Route[]): string[] {
  const problems: string[] = [];
  for (const r of routes) {
    const name = `${r.method} ${r.url}`;
    const op = spec.paths[openApiPath(r.url)]?.[r.method.toLowerCase()];
    if (!op) {
      problems.push(`${name}: not in the spec`);
      continue;
    }
    const codes = Object.keys(op.responses ?? {});
    const success = codes.filter((code) => /^2\d\d$/.test(code));
    if (success.length === 0) problems.push(`${name}: no success response`);
    for (const code of success) {
      const content = op.responses![code]!.content;
      // A 204 has no body; any other success must say what its body is.
      if (code !== '204' && !(content && Object.values(content).length > 0 && Object.values(content).every((m) => m.schema))) {
        problems.push(`${name}: response ${code} has no schema`);
      }
    }
    // 401 comes from the token check shared by every /api route; the route itself must declare
    // at least one error of its own (400 for bad input, 404, 409...), in the error shape.
    const errors = codes.filter((code) => /^[45]\d\d$/.test(code) && code !== '401');
    if (errors.length === 0) problems.push(`${name}: no error response besides 401`);
    for (const code of [...errors, '401']) {
      const schema = op.responses![code]?.content?.['application/json']?.schema as { properties?: { error?: unknown } } | undefined;
      if (!schema?.properties?.error) problems.push(`${name}: response ${code} is not the JSON error shape`);
    }
    // The editor's sign-in (the token in the body) and its session are the one exception.
    if (r.url === '/api/session') {
      const expected = r.method === 'POST' ? [] : [{ editorSession: [] }];
      if (JSON.stringify(op.security) !== JSON.stringify(expected)) problems.push(`${name}: security is not ${JSON.stringify(expected)}`);
    } else if (!op.security?.some((s) => 'bearerAuth' in s) || !op.security?.some((s) => 'editorSession' in s)) {
      problems.push(`${name}: no bearer or session security`);
    }
    for (const param of r.url.match(/:(\w+)/g) ?? []) {
      if (!op.parameters?.some((p) => p.in === 'path' && p.name === param.slice(1))) problems.push(`${name}: path parameter ${param} undocumented`);
    }
  }
  return problems;
}

async function specOf(app: FastifyInstance): Promise<Spec> {
  const res = await app.inject({ method: 'GET', url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return res.json() as Spec;
}

describe('OpenAPI document at /docs/json', () => {
  it('has the OpenAPI 3 shape, with a bearer scheme, and every schema in it compiles', async () => {
    const spec = await specOf(t.app);
    expect(spec.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(spec.info).toEqual(expect.objectContaining({ title: expect.any(String), version: expect.stringMatching(/^\d+\.\d+\.\d+/) }));
    expect(spec.components?.securitySchemes?.bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    expect(spec.components?.securitySchemes?.editorSession).toEqual(expect.objectContaining({ type: 'apiKey', in: 'cookie', name: 'broadside_session' }));
    expect(Object.keys(spec.paths).length).toBeGreaterThan(0);

    // OpenAPI 3.1 schemas are JSON Schema 2020-12: each must be one Ajv accepts.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    let schemas = 0;
    for (const [path, item] of Object.entries(spec.paths)) {
      expect(path).toMatch(/^\//);
      for (const [method, op] of Object.entries(item)) {
        expect(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']).toContain(method);
        expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0);
        for (const [code, response] of Object.entries(op.responses ?? {})) {
          expect([code, typeof response.description]).toEqual([code, 'string']);
          for (const media of Object.values(response.content ?? {})) {
            expect(() => ajv.compile(media.schema!)).not.toThrow();
            schemas += 1;
          }
        }
      }
    }
    expect(schemas).toBeGreaterThan(20);
  });

  it('documents every /api route the app registers, with success and error schemas and the bearer scheme', async () => {
    const routes = routesOf.get(t.app);
    expect(routes).toBeDefined();
    const api = routes!.filter(isApi);
    // The collection works (these exist today); the list itself is whatever the app registered.
    expect(api).toEqual(
      expect.arrayContaining([
        { method: 'POST', url: '/api/issues' },
        { method: 'GET', url: '/api/subscribers/export' },
      ]),
    );
    const spec = await specOf(t.app);
    expect(problemsOf(spec, api)).toEqual([]);

    // And the other way round: nothing under /api in the spec that the app does not serve.
    const served = new Set(api.map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const documented = Object.entries(spec.paths)
      .filter(([p]) => p.startsWith('/api'))
      .flatMap(([p, item]) => Object.keys(item).map((m) => `${m} ${p}`));
    expect(documented.filter((d) => !served.has(d))).toEqual([]);
    expect(documented).toHaveLength(served.size);
  });

  it('documents the error shape the API really answers with', async () => {
    const spec = await specOf(t.app);
    const documented = spec.paths['/api/issues/{id}']!.get!.responses!['404']!.content!['application/json']!.schema!;
    const res = await t.app.inject({ method: 'GET', url: '/api/issues/999999', headers: t.auth });
    expect(res.statusCode).toBe(404);
    const validate = new Ajv2020({ strict: false }).compile(documented);
    expect(validate(res.json())).toBe(true);
    expect(documented).toEqual(expect.objectContaining({ required: ErrorSchema.required }));
  });

  it('includes the operator probes and the provider webhooks, and hides pages that are not API', async () => {
    const spec = await specOf(t.app);
    const served = new Set(routesOf.get(t.app)!.map((r) => r.url));
    for (const probe of ['/healthz', '/readyz', '/metrics'].filter((p) => served.has(p))) {
      expect([probe, Object.keys(spec.paths[probe] ?? {})]).toEqual([probe, ['get']]);
      expect(spec.paths[probe]!.get!.responses!['200']!.content).toBeDefined();
    }
    expect(served.has('/healthz') && served.has('/readyz')).toBe(true);
    const hidden = Object.keys(spec.paths).filter((p) => /^\/(admin|docs)\b/.test(p) || p === '/' || p === '/subscribe/check-inbox' || p === '/feed.xml');
    expect(hidden).toEqual([]);
    // Besides the editor API and the probes: the provider webhooks, and the public routes that answer JSON.
    expect(
      Object.keys(spec.paths)
        .filter((p) => !p.startsWith('/api/') && !['/healthz', '/readyz', '/metrics'].includes(p))
        .sort(),
    ).toEqual([
      '/confirm/{token}',
      '/data/{token}',
      '/data/{token}/erase',
      '/issues',
      '/issues/{slug}',
      '/manage/{token}',
      '/manage/{token}/data-link',
      '/subscribe',
      '/unsubscribe/{token}',
      '/webhooks/bounces/{provider}',
    ]);
    const webhook = spec.paths['/webhooks/bounces/{provider}']!.post!;
    // Providers sign their requests; no bearer token is asked of them.
    expect(webhook.security).toEqual([]);
    expect(Object.keys(webhook.responses!)).toEqual(expect.arrayContaining(['200', '400', '401', '503']));
  });

  it('fails a route that declares no schemas (the check above can fail)', async () => {
    const app = Fastify();
    try {
      await registerOpenApi(app);
      app.get('/api/widgets', async () => ({ id: 1 }));
      app.post('/api/widgets/:id', { schema: { response: { 200: { type: 'object' } } } }, async () => ({}));
      await app.ready();
      const routes = routesOf.get(app)!.filter(isApi);
      expect(routes).toHaveLength(2);
      const problems = problemsOf(await specOf(app), routes);
      expect(problems).toEqual([
        'GET /api/widgets: no success response',
        'GET /api/widgets: no error response besides 401',
        'POST /api/widgets/:id: no error response besides 401',
      ]);
    } finally {
      await app.close();
    }
  });
});

describe('the public routes in the OpenAPI document', () => {
  /** The documented schema of one answer. */
  const schemaOf = (spec: Spec, path: string, method: string, code: string) =>
    spec.paths[path]?.[method]?.responses?.[code]?.content?.['application/json']?.schema;

  it("describes the JSON a site's own script gets from POST /subscribe, with no token asked", async () => {
    const spec = await specOf(t.app);
    const op = spec.paths['/subscribe']!.post! as Operation & {
      requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
    };
    expect(op.security).toEqual([]);
    expect(Object.keys(op.requestBody!.content!).sort()).toEqual(['application/json', 'application/x-www-form-urlencoded']);
    expect(Object.keys(op.requestBody!.content!['application/json']!.schema!.properties!)).toEqual(expect.arrayContaining(['email', 'name']));
    expect(Object.keys(op.responses!).sort()).toEqual(['202', '400', '429']);

    // What the route really answers fits what the document says, for success and for bad input.
    const ajv = new Ajv2020({ strict: false });
    const ok = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'openapi.reader@example.com' } });
    expect([ok.statusCode, ajv.validate(schemaOf(spec, '/subscribe', 'post', '202')!, ok.json())]).toEqual([202, true]);
    const bad = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'not an address' } });
    expect([bad.statusCode, ajv.validate(schemaOf(spec, '/subscribe', 'post', '400')!, bad.json())]).toEqual([400, true]);
  });

  it("documents the reader's links and the archive by what they answer JSON with, and leaves their HTML-only pages out", async () => {
    const spec = await specOf(t.app);
    expect(Object.keys(spec.paths['/confirm/{token}']!)).toEqual(['post']);
    expect(Object.keys(spec.paths['/unsubscribe/{token}']!)).toEqual(['post']);
    for (const [path, method] of [
      ['/confirm/{token}', 'post'],
      ['/unsubscribe/{token}', 'post'],
      ['/manage/{token}', 'get'],
      ['/data/{token}', 'get'],
      ['/data/{token}/erase', 'post'],
      ['/issues', 'get'],
      ['/issues/{slug}', 'get'],
    ] as const) {
      const op = spec.paths[path]![method]!;
      expect([path, op.security]).toEqual([path, []]);
      expect([path, schemaOf(spec, path, method, '200')]).toEqual([path, expect.any(Object)]);
    }
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const archive = await t.app.inject({ method: 'GET', url: '/issues', headers: { accept: 'application/json' } });
    expect([archive.statusCode, ajv.validate(schemaOf(spec, '/issues', 'get', '200')!, archive.json())]).toEqual([200, true]);
    const forged = await t.app.inject({ method: 'POST', url: '/confirm/forged.token', headers: { accept: 'application/json' } });
    expect([forged.statusCode, ajv.validate(schemaOf(spec, '/confirm/{token}', 'post', '400')!, forged.json())]).toEqual([400, true]);

    // A reader's own links answer as documented: the manage page, the data link, the data.
    const [reader] = await addReaders(t, [{ email: 'openapi.data@example.com' }]);
    const json = { accept: 'application/json' };
    const manage = await t.app.inject({ method: 'GET', url: pathOf(t.c.links.manage(reader!.id)), headers: json });
    expect([manage.statusCode, ajv.validate(schemaOf(spec, '/manage/{token}', 'get', '200')!, manage.json())]).toEqual([200, true]);
    const requested = await t.app.inject({ method: 'POST', url: `${pathOf(t.c.links.manage(reader!.id))}/data-link`, headers: json });
    expect([requested.statusCode, ajv.validate(schemaOf(spec, '/manage/{token}/data-link', 'post', '202')!, requested.json())]).toEqual([202, true]);
    const dataPath = pathOf(t.c.links.data(reader!.id));
    const data = await t.app.inject({ method: 'GET', url: dataPath, headers: json });
    expect([data.statusCode, ajv.validate(schemaOf(spec, '/data/{token}', 'get', '200')!, data.json())]).toEqual([200, true]);
    const unconfirmed = await t.app.inject({ method: 'POST', url: `${dataPath}/erase`, payload: {} });
    expect([unconfirmed.statusCode, ajv.validate(schemaOf(spec, '/data/{token}/erase', 'post', '400')!, unconfirmed.json())]).toEqual([400, true]);
    const erased = await t.app.inject({ method: 'POST', url: `${dataPath}/erase`, payload: { confirm: true } });
    expect([erased.statusCode, ajv.validate(schemaOf(spec, '/data/{token}/erase', 'post', '200')!, erased.json())]).toEqual([200, true]);
  });
});

describe('/docs', () => {
  it('answers the Swagger UI page without a token, and its assets load', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('swagger-ui');
    const asset = /src="([^"]*swagger-ui-bundle\.js)"/.exec(res.body)?.[1];
    expect(asset).toBeDefined();
    const js = await t.app.inject({ method: 'GET', url: new URL(asset!, 'http://x/docs/').pathname });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
  });

  it('reveals no secret', async () => {
    for (const url of ['/docs', '/docs/json', '/docs/yaml']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect([url, res.statusCode]).toEqual([url, 200]);
      expect(res.body).not.toContain(t.config.apiToken);
      expect(res.body).not.toContain(t.config.secret);
    }
  });
});
