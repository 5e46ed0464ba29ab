import { createDocument } from 'zod-openapi';
import { z } from 'zod';
import type { ApiRoute } from './api-routes.js';
import { ERRORS } from './problem.js';

const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...(keyof typeof ERRORS)[]]),
    detail: z.string().optional(),
    instance: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details with a stable code' });

const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: Problem } } });

/** The OpenAPI 3.1 document of every registered /api route, from the schemas that validate them. */
export function buildOpenApiDocument(routes: ApiRoute[], info: { title: string; version: string; serverUrl: string; serviceTokenHeader: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const pathParams = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    const contentTypes = r.body ? { 'application/json': { schema: r.body }, ...(r.form ? { 'application/x-www-form-urlencoded': { schema: r.body } } : {}) } : undefined;
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method}${path.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '')}`,
      security: r.auth === 'bearer' ? [{ bearer: [] }] : r.auth === 'service' ? [{ serviceToken: [] }] : [],
      requestParams: {
        ...(pathParams.length ? { path: z.object(Object.fromEntries(pathParams.map((p) => [p, z.string()]))) } : {}),
        ...(r.query ? { query: r.query } : {}),
      },
      ...(contentTypes ? { requestBody: { required: true, content: contentTypes } } : {}),
      responses: {
        ...(r.body || r.query ? { 400: problemResponse('Invalid input') } : {}),
        ...(r.method !== 'get' ? { 415: problemResponse('The body is of a content type this operation does not read') } : {}),
        ...(r.body ? { 413: problemResponse('The body is larger than 64 kB') } : {}),
        ...(r.auth === 'bearer' ? { 401: problemResponse('Missing or invalid token'), 403: problemResponse('Not allowed') } : {}),
        ...(r.auth === 'service' ? { 401: problemResponse('Missing or wrong service token') } : {}),
        ...(pathParams.length ? { 404: problemResponse('No such resource, or not one the caller may see') } : {}),
        // A route's own word on a status wins; its errors are problem details like the rest.
        ...Object.fromEntries(
          Object.entries(r.responses).map(([status, res]) => [
            status,
            res.schema
              ? { description: res.description, content: { 'application/json': { schema: res.schema } } }
              : Number(status) >= 400
                ? problemResponse(res.description)
                : { description: res.description },
          ]),
        ),
      },
    };
  }
  return createDocument({
    openapi: '3.1.0',
    info: { title: info.title, version: info.version },
    servers: [{ url: info.serverUrl }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An access token from /api/auth/login (or a trusted client), a client-credentials token with the latch:admin scope, or an app API key (latch_…)',
        },
        serviceToken: { type: 'apiKey', in: 'header', name: info.serviceTokenHeader, description: 'SERVICE_API_TOKEN, for monitoring' },
      },
    },
    paths: paths as never,
  });
}
