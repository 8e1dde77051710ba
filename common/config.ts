// One environment schema per process, built from shared parts. It validates once at start and yields the types.
// A bad value stops the process with one line naming the variable and what it expects.
import { Type, type Static, type TObject, type TProperties } from 'typebox'
import { Value } from 'typebox/value'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'

const Int = (def: number, min = 0, description = '') => Type.Integer({ default: def, minimum: min, description })
const Bool = (def: boolean, description = '') => Type.Boolean({ default: def, description })

export const BaseEnv = {
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// connection URL' }),
  REDIS_URL: Type.String({ pattern: '^rediss?://', description: 'a redis:// connection URL' }),
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
  ADMIN_EMAILS: Type.String({ default: '', description: 'comma-separated emails that register as admins' }),
  CACHE_ENABLED: Bool(true, 'false turns the redirect cache (L1 and Redis) off'),
  CACHE_TTL_SECONDS: Int(3600, 1),
  CACHE_NEGATIVE_TTL_SECONDS: Int(60, 1),
  L1_CACHE_MAX: Int(10000, 0),
  L1_CACHE_TTL_MS: Int(5000, 0),
  STATS_CACHE_TTL_SECONDS: Int(10, 0),
  TRUSTED_PROXIES: Type.String({ default: '127.0.0.1', description: 'comma-separated IPs/CIDRs whose X-Forwarded-For is trusted' }),
  RATE_LIMIT_ENABLED: Bool(true),
  RATE_LIMIT_WINDOW_MS: Int(60000, 1000),
  RATE_LIMIT_GLOBAL_MAX: Int(60000, 1, 'requests per client address per window on every API route (shared by replicas through Redis)'),
  RATE_LIMIT_REDIRECT_MAX: Int(60000, 1, 'redirects per client address per window, counted in memory by each replica'),
  RATE_LIMIT_AUTH_MAX: Int(20, 1),
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
  SHUTDOWN_READINESS_DELAY_MS: Int(1000, 0, 'time readiness reports 503 and responses close their connections before the listener closes'),
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
})

export const WorkerEnv = Type.Object({
  ...BaseEnv,
  METRICS_PORT: Int(9465, 0),
  CLICK_CONCURRENCY: Int(200, 1),
  CLICK_BATCH_SIZE: Int(500, 1),
  CLICK_BATCH_MAX_WAIT_MS: Int(20, 0),
  EXPORT_CONCURRENCY: Int(2, 1),
  ROLLUP_EVERY_MS: Int(300000, 1000),
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
  const value = Value.Convert(schema, Value.Default(schema, raw))
  const errors = [...Value.Errors(schema, value)]
  if (errors.length > 0) {
    const e = errors[0]!
    const name = e.instancePath.replace(/^\//, '') || String((e.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '')
    const prop = (schema.properties as Record<string, { description?: string }>)[name]
    const expects = prop?.description ?? e.message
    const got = env[name] === undefined ? 'it is not set' : `got ${JSON.stringify(redactIfSecret(name, env[name]!))}`
    throw new ConfigError(`config: ${name} is invalid (${got}); expected ${expects}`)
  }
  return value as Static<T>
}

function redactIfSecret(name: string, v: string): string {
  return /SECRET|PASSWORD|TOKEN/.test(name) ? `<${v.length} chars>` : v
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
