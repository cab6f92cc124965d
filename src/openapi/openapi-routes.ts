/** `GET BASE/openapi.json` (README "OpenAPI"): the document of every route under the base path, itself public. */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AuthPlugin } from '../auth/auth-plugin'
import { openApiDocument, type DocumentedRoute } from './openapi-document'
import { jsonResponses } from './responses'

const OpenApiObject = v.object({
  openapi: v.string(),
  info: v.object({ title: v.string(), version: v.string() }),
  paths: v.record(v.string(), v.record(v.string(), v.unknown())),
})

export interface OpenApiRoutesDeps {
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  basePath: string
  /** The whole app's routes; read at the first request, when every route exists. */
  routes: () => readonly DocumentedRoute[]
}

export function openApiRoutes({ auth, basePath, routes }: OpenApiRoutesDeps) {
  // The routes never change once the app is built: one document, serialised once.
  let served: string | undefined
  return new Elysia({ name: 'openapi-routes' })
    .use(auth)
    .get('/openapi.json', () => (served ??= JSON.stringify(openApiDocument(routes(), basePath))), {
      auth: 'public',
      detail: { responses: jsonResponses({ 200: OpenApiObject }) },
    })
}
