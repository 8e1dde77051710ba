// One environment schema per process, built from shared parts. It validates once at start and yields the types.
// A bad value stops the process with one line naming the variable and what it expects.
import { Type, type Static, type TObject, type TProperties } from 'typebox'
import { Value } from 'typebox/value'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { redactCredentials } from './redact.ts'

const Int = (def: number, min = 0, description = '') => Type.Integer({ default: def, minimum: min, description })
const Bool = (def: boolean, description = '') => Type.Boolean({ default: def, description })

export const BaseEnv = {
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://', format: 'url', description: 'a postgres:// connection URL' }),
  REDIS_URL: Type.String({ pattern: '^rediss?://', format: 'url', description: 'a redis:// URL of the queue Redis (BullMQ; noeviction)' }),
  METRICS_PORT: Int(9464, 0, 'port of the /metrics listener (0 picks a free one)'),
  METRICS_HOST: Type.String({ default: '0.0.0.0' }),
  INSTANCE_ID: Type.String({ default: `${hostname()}-${process.pid}`, minLength: 1 }),
  REDIS_PREFIX: Type.String({
    default: 'opsdrill',
    description: 'namespace of every Redis key: queues, cache, rate limits, pub/sub',
    pattern: '^[a-zA-Z0-9_-]+$',
  }),
  PG_POOL_MAX: Int(10, 1),
  PG_CONNECT_TIMEOUT_MS: Int(2000, 1),
  PG_STATEMENT_TIMEOUT_MS: Int(2000, 1),
  PG_QUERY_TIMEOUT_MS: Int(2500, 1),
  PG_IDLE_TIMEOUT_MS: Int(10000, 1),
  REDIS_COMMAND_TIMEOUT_MS: Int(500, 1, 'bound on a cache or rate-limit Redis command before failing open'),
  REDIS_CONNECT_TIMEOUT_MS: Int(2000, 1),
  JOB_ATTEMPTS: Int(5, 1),
  JOB_BACKOFF_MS: Int(1000, 1),
}

export const ApiEnv = Type.Object({
  ...BaseEnv,
  HOST: Type.String({ default: '0.0.0.0' }),
  PORT: Int(3000, 0, 'port of the public HTTP listener'),
  PUBLIC_BASE_URL: Type.String({ default: 'http://localhost:8080', pattern: '^https?://' }),
  JWT_SECRET: Type.String({ minLength: 32, description: 'HS256 secret of at least 32 bytes' }),
  JWT_ISSUER: Type.String({ default: 'opsdrill' }),
  JWT_AUDIENCE: Type.String({ default: 'opsdrill-api' }),
  JWT_TTL_SECONDS: Int(900, 60),
  CACHE_REDIS_URL: Type.Optional(
    Type.String({
      pattern: '^rediss?://',
      description:
        'a redis:// URL of the Redis for the redirect cache, stats cache, rate limits and cache pub/sub, run with maxmemory and allkeys-lru; unset: REDIS_URL',
    }),
  ),
  CACHE_ENABLED: Bool(true, 'false turns the redirect cache (L1 and Redis) off'),
  CACHE_TTL_SECONDS: Int(3600, 1),
  CACHE_NEGATIVE_TTL_SECONDS: Int(60, 1),
  L1_CACHE_MAX: Int(10000, 0),
  L1_CACHE_TTL_MS: Int(5000, 0),
  STATS_CACHE_TTL_SECONDS: Int(10, 0),
  TRUSTED_PROXIES: Type.String({ default: '127.0.0.1', description: 'comma-separated IPs/CIDRs whose X-Forwarded-For is trusted' }),
  REDIRECT_REFERRER_POLICY: Type.Union(
    [
      'no-referrer',
      'no-referrer-when-downgrade',
      'origin',
      'origin-when-cross-origin',
      'same-origin',
      'strict-origin',
      'strict-origin-when-cross-origin',
      'unsafe-url',
    ].map((p) => Type.Literal(p)),
    {
      default: 'strict-origin-when-cross-origin',
      description: 'Referrer-Policy on the redirect: what the destination learns of the page the link was on',
    },
  ),
  COUNTRY_HEADER: Type.String({
    default: '',
    pattern: '^[A-Za-z0-9-]*$',
    description:
      "request header with the client's ISO country code that the proxy in front sets (cf-ipcountry behind Cloudflare), " +
      'read only from a peer in TRUSTED_PROXIES; empty records no country',
  }),
  RATE_LIMIT_ENABLED: Bool(true),
  RATE_LIMIT_WINDOW_MS: Int(60000, 1000),
  RATE_LIMIT_GLOBAL_MAX: Int(60000, 1, 'requests per client address per window on every API route (shared by replicas through Redis)'),
  RATE_LIMIT_REDIRECT_MAX: Int(60000, 1, 'redirects per client address per window, counted in memory by each replica'),
  RATE_LIMIT_AUTH_MAX: Int(20, 1, 'password checks per client address per window on each of login, registration and the queue UI'),
  RATE_LIMIT_AUTH_ACCOUNT_MAX: Int(10, 1, 'password checks and registrations per email per window, from all addresses together'),
  RATE_LIMIT_LINK_CREATE_MAX: Int(600, 1),
  BODY_LIMIT_BYTES: Int(16384, 1024),
  // Enqueues are off the hot path (clicks are flushed in the background) and a bulk add is one large round trip.
  REDIS_QUEUE_COMMAND_TIMEOUT_MS: Int(5000, 1, 'bound on a queue (producer) Redis command'),
  CLICK_BUFFER_MAX: Int(10000, 1),
  CLICK_FLUSH_INTERVAL_MS: Int(50, 1),
  CLICK_ENQUEUE_ATTEMPTS: Int(3, 1, 'tries of one click batch enqueue before its clicks go to the spool'),
  CLICK_ENQUEUE_BACKOFF_MS: Int(100, 0, 'wait before the second try of a click batch enqueue, doubled for each further try'),
  CLICK_SPOOL_DIR: Type.String({
    default: join(tmpdir(), 'opsdrill-click-spool'),
    minLength: 1,
    description: "a writable directory of this replica's own (two live replicas must not share one)",
  }),
  CLICK_SPOOL_MAX_BYTES: Int(32 * 1024 * 1024, 4096, 'bytes of spooled clicks kept while Redis is unavailable (at least 4096)'),
  METRICS_ENABLED: Bool(true, 'false turns off the per-request HTTP histogram (for the observability-cost benchmark)'),
  MIGRATE_ON_START: Bool(false),
  SHUTDOWN_GRACE_MS: Int(10000, 100),
  SHUTDOWN_READINESS_DELAY_MS: Int(1000, 0, 'time readiness reports 503, keep-alive connections kept, before the listener closes'),
  SHUTDOWN_IDLE_GRACE_MS: Int(
    1000,
    0,
    "time after the listener closes that idle keep-alive connections stay open for the proxy to close (above nginx's keepalive_timeout, 750 ms)",
  ),
  // Shedding keys on event-loop delay, the symptom of unbounded latency. Utilisation near 1 is normal at full load
  // (and while modules load at start), so it is off unless set.
  MAX_EVENT_LOOP_DELAY_MS: Int(500, 0, 'event-loop delay (ms) above which requests get 503 + Retry-After; 0 disables'),
  MAX_EVENT_LOOP_UTILIZATION: Type.Number({
    default: 0,
    minimum: 0,
    maximum: 1,
    description: 'event-loop utilisation (0..1) above which requests are shed; 0 disables',
  }),
  REQUEST_TIMEOUT_MS: Int(10000, 0),
  LOG_SLOW_REQUEST_MS: Int(1000, 0, 'a request taking at least this long (ms) is logged even when it is not sampled; 0 logs every request'),
})

export const WorkerEnv = Type.Object({
  ...BaseEnv,
  METRICS_PORT: Int(9465, 0),
  CLICK_CONCURRENCY: Int(200, 1),
  CLICK_BATCH_SIZE: Int(500, 1),
  CLICK_BATCH_MAX_WAIT_MS: Int(20, 0),
  EXPORT_CONCURRENCY: Int(2, 1),
  EXPORT_MAX_ROWS: Int(1_000_000, 1, 'clicks an export may hold; a larger one fails with a message saying so'),
  EXPORT_MAX_BYTES: Int(256 * 1024 * 1024, 1024, 'bytes of CSV an export may hold; a larger one fails with a message saying so'),
  EXPORT_RETENTION_HOURS: Int(168, 1, 'hours a finished (done or failed) export is kept before the maintenance sweep deletes it'),
  EXPORT_REQUEUE_AFTER_MS: Int(
    60000,
    1000,
    'age after which the maintenance sweep re-enqueues a queued export (its enqueue was lost to a crash); same job id, so never twice',
  ),
  MAINTENANCE_EVERY_MS: Int(300000, 1000, 'interval of the scheduled maintenance jobs (retention)'),
  // Exports and maintenance scan and delete in bulk: the API's PG_* bounds (sized for a request) would cut them off.
  // Click ingestion keeps PG_*: a stalled batch must fail fast and be retried.
  BATCH_PG_POOL_MAX: Int(2, 1, 'connections of the pool that export and maintenance jobs use'),
  BATCH_PG_STATEMENT_TIMEOUT_MS: Int(300000, 1, 'statement_timeout of export and maintenance jobs'),
  BATCH_PG_QUERY_TIMEOUT_MS: Int(310000, 1, 'client-side bound on one export or maintenance query (above the statement timeout)'),
  CLICK_RETENTION_DAYS: Int(90, 1),
  STALLED_INTERVAL_MS: Int(30000, 1000),
  JOB_LOCK_MS: Int(
    30000,
    1000,
    "lock of an active job, renewed at half this; a killed worker's jobs are retried about this plus STALLED_INTERVAL_MS later",
  ),
  SHUTDOWN_GRACE_MS: Int(25000, 100),
})

export type ApiConfig = Static<typeof ApiEnv>
export type WorkerConfig = Static<typeof WorkerEnv>

export class ConfigError extends Error {}

/** Validates env against schema; throws ConfigError whose message is one line naming the variable. */
export function loadConfig<T extends TObject<TProperties>>(schema: T, env: NodeJS.ProcessEnv = process.env): Static<T> {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) {
    const v = env[key]
    if (v !== undefined && v !== '') raw[key] = v
  }
  const value = Value.Convert(schema, Value.Default(schema, raw)) as Record<string, unknown>
  const props = schema.properties as Record<string, { description?: string; format?: string }>
  const errors = [...Value.Errors(schema, value)]
  // A URL the clients cannot parse fails here, with its credentials redacted, not later in a client's stack trace.
  const badUrl = Object.keys(props).find((k) => props[k]!.format === 'url' && value[k] !== undefined && !URL.canParse(String(value[k])))
  if (errors.length > 0 || badUrl) {
    const e = errors[0]
    const name = e
      ? e.instancePath.replace(/^\//, '') || String((e.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '')
      : badUrl!
    const expects = props[name]?.description ?? e?.message
    const got = env[name] === undefined ? 'it is not set' : `got ${JSON.stringify(redact(name, env[name]!, props[name]?.format === 'url'))}`
    throw new ConfigError(`config: ${name} is invalid (${got}); expected ${expects}`)
  }
  return value as Static<T>
}

function redact(name: string, v: string, isUrl: boolean): string {
  if (/SECRET|PASSWORD|TOKEN/.test(name)) return `<${v.length} chars>`
  // A malformed connection URL may lack the :// the general pattern needs: all before its last @ is taken as userinfo.
  return isUrl ? v.replace(/^([^@]*?\/\/|[a-z][a-z0-9+.-]*:)?.*@/i, '$1***@') : redactCredentials(v)
}

/** Entry points call this: on a ConfigError print the one line and exit 2. */
export function loadConfigOrExit<T extends TObject<TProperties>>(schema: T): Static<T> {
  try {
    return loadConfig(schema)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
}
