/**
 * `PUT internal/monitor-snapshot/users-state` and `…/active-calls`
 * (README "Ingest from an external producer"): full snapshots from a producer on the box itself,
 * such as ModuleMonitorActiveCalls' PHP worker during a migration. What it sends passes the
 * allowlist of snapshot.ts, so only the schema's fields reach the sink; each producer instance's
 * sequence only grows.
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import { accessDetail } from '../auth/route-access'
import { unixSeconds, type Clock } from '../clock'
import type { PRESENCE_SOURCES } from '../config/schema'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody, HttpError } from '../http/errors'
import { parseJsonBody, type JsonBodyLimits } from '../http/json-body'
import { jsonSchemaOf } from '../openapi/json-schema'
import { jsonResponses } from '../openapi/responses'
import { isLocalPublisher } from './publisher'
import { IngestBody, SNAPSHOT_KINDS, type SnapshotKind, type SnapshotOf, type SnapshotSink } from './snapshot'

export type PresenceSource = (typeof PRESENCE_SOURCES)[number]

/**
 * 20 000 employees, each in a call, take 5.4 MiB. Valid snapshots nest 5 deep; the margin is for
 * fields a producer adds and the allowlist drops. Items: as many as 8 MiB of JSON can hold.
 */
export const INGEST_LIMITS: JsonBodyLimits = { maxBytes: 8 * 1024 * 1024, maxDepth: 16, maxItems: 4 * 1024 * 1024 }

const IngestAnswer = v.object({ success: v.literal(true), kind: v.picklist(SNAPSHOT_KINDS), instanceId: v.string(), sequence: v.number() })

export interface IngestRoutesDeps {
  clock: Clock
  /** The socket peer of a request: only loopback may send snapshots. */
  peerOf: (request: Request) => string | undefined
  /** `presence_source`: the routes accept snapshots only when it is "ingest". */
  source: PresenceSource
  sink: SnapshotSink
  log: (line: string) => void
}

/** The producer instance and sequence last accepted for one kind. */
interface Accepted {
  instanceId: string
  sequence: number
}

export function ingestRoutes({ clock, peerOf, source, sink, log }: IngestRoutesDeps) {
  const accepted = new Map<SnapshotKind, Accepted>()

  /** A new instance is logged: a producer restarted, or another one took over. */
  function remember(kind: SnapshotKind, last: Accepted | undefined, { instanceId, sequence }: Accepted): void {
    if (last?.instanceId !== instanceId) log(`ingest: ${kind} from producer instance ${instanceId} (before: ${last?.instanceId ?? 'none'}), sequence ${sequence}`)
    accepted.set(kind, { instanceId, sequence })
  }

  const route = (kind: SnapshotKind) =>
    new Elysia({ name: `ingest-${kind}` }).put(
      `/internal/monitor-snapshot/${kind}`,
      ({ body, request, status }) => {
        const { kind: _full, ...snapshot } = body as SnapshotOf<typeof kind> & { kind: 'full' }
        if (!headersMatch(request.headers, snapshot)) return status(400, errorBody(ERRORS.snapshotHeaderMismatch, unixSeconds(clock)))
        const last = accepted.get(kind)
        if (last && isStale(snapshot, last)) return status(409, errorBody(ERRORS.staleSnapshot, unixSeconds(clock), { lastSequence: last.sequence }))
        sink.full(kind, snapshot as SnapshotOf<typeof kind>)
        // Remembered once delivered: a snapshot the sink failed on may be sent again as it was.
        remember(kind, last, snapshot)
        return { success: true as const, kind, instanceId: snapshot.instanceId, sequence: snapshot.sequence }
      },
      {
        // Loopback only, judged by address, as pub/ is (README "Ingest from an external producer").
        detail: {
          ...accessDetail('public'),
          requestBody: { required: true, content: { 'application/json': lazySchemaOf(kind) } },
          responses: jsonResponses({ 200: IngestAnswer, 400: ErrorEnvelope, 403: ErrorEnvelope, 409: ErrorEnvelope, 413: ErrorEnvelope }),
        },
        // Who may send, and whether this service takes snapshots at all, are judged before up to 8 MiB of body is read.
        // The body is validated here only: a second pass by Elysia would cost as much again (http/json-body.ts).
        parse: async (context) => {
          if (!isLocalPublisher(peerOf(context.request), context.request.headers)) throw new HttpError(ERRORS.publishForbidden)
          if (source !== 'ingest') throw new HttpError(ERRORS.sourceMismatch, { source })
          return parseJsonBody(INGEST_LIMITS, IngestBody[kind])(context)
        },
      },
    )

  return new Elysia({ name: 'ingest-routes' }).use(route(SNAPSHOT_KINDS[0])).use(route(SNAPSHOT_KINDS[1]))
}

/** Converted when the OpenAPI document is built, as the documented answers are (openapi/responses.ts), not at every start. */
function lazySchemaOf(kind: SnapshotKind) {
  return {
    get schema() {
      return jsonSchemaOf(IngestBody[kind], 'input') as never
    },
  }
}

/** Not above the same instance's last accepted sequence; a new instance starts afresh (it restarted). */
function isStale({ instanceId, sequence }: Accepted, last: Accepted): boolean {
  return last.instanceId === instanceId && sequence <= last.sequence
}

/** `X-Producer-Instance` and `X-Sequence` are optional; when sent they must say what the body says. */
function headersMatch(headers: Headers, { instanceId, sequence }: Accepted): boolean {
  const instance = headers.get('x-producer-instance')
  const sent = headers.get('x-sequence')
  return (instance === null || instance.trim() === instanceId) && (sent === null || sent.trim() === String(sequence))
}
