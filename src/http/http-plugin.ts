/**
 * Cross-cutting HTTP behaviour: JSON and nosniff headers on every response, the error envelope for
 * everything Elysia or a handler throws, 404 versus 405 with `Allow` (RFC 9110 §15.5.6), and error
 * envelopes in the client's language (README "Localized errors").
 */
import { Elysia, ValidationError } from 'elysia'
import { randomUUID } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import { CATALOGUES } from '../i18n/catalogues'
import type { Catalogue } from '../i18n/en'
import { localizeEnvelope } from '../i18n/localize'
import { DEFAULT_LANGUAGE, NegotiationMemory } from '../i18n/negotiate'
import { storeOutageOf, type StoreOutage } from '../store/database'
import { StoreUnavailableError } from '../store/outage'
import { ERRORS, errorBody, fieldErrors, HttpError, type StandardIssue } from './errors'

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8'
/** Seconds: a lock clears quickly; an operator has to free disk space. */
const RETRY_AFTER: Record<StoreOutage, string> = { busy: '1', unavailable: '5' }

/** Told about every error answer (README "Metrics"): its route pattern and status, and store outages by kind. */
export interface ErrorObserver {
  answered(route: string | undefined, status: number): void
  storeOutage(outage: StoreOutage): void
}

export function httpPlugin({ clock, routes, observer }: { clock: Clock; routes: RouteIndex; observer?: ErrorObserver }) {
  /** A refused body's or query's issues, kept for the localized `errors` (README "Localized errors"). */
  const issuesOf = new WeakMap<Request, readonly StandardIssue[]>()
  const languages = new NegotiationMemory()
  return new Elysia({ name: 'http' })
    // Default headers are copied into every context's `set`, errors included; cheaper than a hook.
    .headers({
      'content-type': JSON_CONTENT_TYPE,
      'x-content-type-options': 'nosniff',
      // Every answer is per-user or per-moment; nothing here is safe for a shared cache.
      'cache-control': 'no-store',
    })
    // The hook names the fields it reads: Elysia parses everything for every route when a hook passes its whole context on.
    .onError({ as: 'global' }, ({ code, error, set, request, route }) => {
      const body = errorAnswer(code, error, set, request)
      observer?.answered(route, set.status as number)
      return body
    })
    // Around the whole app, so every answer passes, whether a route, a macro or a hook built it. A request
    // without Accept-Language, or that negotiates to English, gets the handler itself: nothing added.
    .wrap((handle, request) => {
      const language = languages.languageOf(request.headers.get('accept-language'))
      if (language === DEFAULT_LANGUAGE) return handle
      const localize = (answer: unknown) => localizedAnswer(answer, CATALOGUES[language], issuesOf.get(request))
      return (...args: unknown[]) => {
        const answer: unknown = handle(...args)
        return answer instanceof Promise ? answer.then(localize) : localize(answer)
      }
    })

  function errorAnswer(code: string | number, error: unknown, set: { status?: number | string; headers: Record<string, string | number> }, request: Request) {
    const now = unixSeconds(clock)
    const path = pathOf(request.url)
    // Elysia wraps what a parse hook throws in a ParseError; the HttpError is its cause.
    const httpError = error instanceof HttpError ? error : (error as Error | undefined)?.cause
    if (httpError instanceof HttpError) {
      if (httpError.issues) issuesOf.set(request, httpError.issues)
      set.status = httpError.kind.status
      return errorBody(httpError.kind, now, httpError.extra)
    }
    switch (code) {
      case 'NOT_FOUND': {
        const allowed = routes.methodsFor(path)
        if (allowed.length === 0 || allowed.includes(request.method)) {
          set.status = 404
          return errorBody(ERRORS.notFound, now)
        }
        set.status = 405
        set.headers['allow'] = allowed.join(', ')
        return errorBody(ERRORS.methodNotAllowed, now)
      }
      case 'PARSE':
        set.status = 400
        return errorBody(ERRORS.invalidJson, now)
      case 'VALIDATION': {
        const issues = standardIssues(error)
        issuesOf.set(request, issues)
        set.status = 400
        return errorBody(ERRORS.validationFailed, now, { errors: fieldErrors(issues) })
      }
      default: {
        // The store could not commit (locked past the busy timeout, disk full or failing): nothing
        // changed, so a clean, retryable answer; the client repeats the same request later.
        const outage = storeOutageOf(error)
        if (outage) {
          observer?.storeOutage(outage)
          set.status = 503
          set.headers['retry-after'] = RETRY_AFTER[outage]
          // A SQLite result code, or the shared store's own message (store/outage.ts); neither holds a secret.
          const cause = error instanceof StoreUnavailableError ? error.message : (error as { code: string }).code
          console.error(JSON.stringify({ level: 'warn', path, error: `store ${outage}: ${cause}` }))
          return errorBody(outage === 'busy' ? ERRORS.storeBusy : ERRORS.storeUnavailable, now)
        }
        const requestId = randomUUID()
        console.error(JSON.stringify({ level: 'error', request_id: requestId, path, error: describe(error) }))
        set.status = 500
        return errorBody(ERRORS.internal, now, { request_id: requestId })
      }
    }
  }
}

/** An error answer with our envelope, rewritten into `catalogue`'s language; any other answer as it was. */
function localizedAnswer(answer: unknown, catalogue: Catalogue, issues: readonly StandardIssue[] | undefined): unknown {
  if (!(answer instanceof Response) || answer.status < 400 || answer.body === null) return answer
  if (!answer.headers.get('content-type')?.startsWith('application/json')) return answer
  return answer.text().then((text) => {
    const localized = localizeEnvelope(parseJson(text), catalogue, issues)
    if (localized === null) return new Response(text, { status: answer.status, statusText: answer.statusText, headers: answer.headers })
    const headers = new Headers(answer.headers)
    headers.delete('content-length')
    return new Response(JSON.stringify(localized), { status: answer.status, statusText: answer.statusText, headers })
  })
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The path of a request's URL, worked out here rather than taken from Elysia's context: Elysia
 * assumes a host of at least four characters, and Bun gives a bare path when the request had no
 * Host at all (HTTP/1.0). Only errors need it; routes are matched by Bun's router on the path alone.
 */
export function pathOf(url: string): string {
  const start = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2)
  if (start === -1) return '/'
  const query = url.indexOf('?', start)
  return url.slice(start, query === -1 ? undefined : query)
}

/** Paths and their methods, filled once the app has all its routes. */
export class RouteIndex {
  private readonly entries: Array<{ pattern: RegExp; methods: string[] }> = []

  load(routes: ReadonlyArray<{ method: string; path: string }>): void {
    const byPath = new Map<string, string[]>()
    for (const { method, path } of routes) byPath.set(path, [...(byPath.get(path) ?? []), method])
    for (const [path, methods] of byPath) {
      const source = path.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/:[^/]+/g, '[^/]+').replace(/\*/g, '.*')
      this.entries.push({ pattern: new RegExp(`^${source}$`), methods })
    }
  }

  methodsFor(path: string): string[] {
    return this.entries.find((entry) => entry.pattern.test(path))?.methods ?? []
  }
}

function standardIssues(error: unknown): StandardIssue[] {
  if (!(error instanceof ValidationError)) return []
  const validator = error.validator as { '~standard'?: unknown; schema?: { '~standard'?: unknown } }
  const standard = (validator['~standard'] ?? validator.schema?.['~standard']) as
    | { validate(value: unknown): { issues?: StandardIssue[] } | Promise<unknown> }
    | undefined
  const result = standard?.validate(error.value)
  return result && !(result instanceof Promise) ? (result.issues ?? []) : []
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error)
}
