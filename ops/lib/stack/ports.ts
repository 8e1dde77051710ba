// Where every part of the native stack listens. One offset moves the whole set, so the test suite can run a stack
// next to the one a user has up (OPSDRILL_STACK_PORT_OFFSET=1000 puts nginx on 9080, Postgres on 23432, ...).

export interface StackPorts {
  postgres: number
  /** The queues' Redis (AOF, noeviction). */
  redis: number
  /** The cache's Redis (memory only, maxmemory with allkeys-lru): redirect cache, stats cache, rate limits. */
  redisCache: number
  toxiproxy: number
  /** toxiproxy listeners the app connects through, so drills can add latency or cut the link. */
  postgresProxy: number
  redisProxy: number
  redisCacheProxy: number
  nginx: number
  nginxStatus: number
  prometheus: number
  alertmanager: number
  postgresExporter: number
  redisExporter: number
  redisCacheExporter: number
  /** VictoriaLogs: Elasticsearch bulk API, LogsQL and its web UI (/select/vmui/). */
  victoriaLogs: number
  /** The log shipper's (OpenTelemetry Collector) health check. */
  otelcolHealth: number
  /** api-i listens on apiBase+i (HTTP) and apiMetricsBase+i (/metrics); worker-i on workerMetricsBase+i. */
  apiBase: number
  apiMetricsBase: number
  workerMetricsBase: number
}

// Postgres and the two Redis servers listen outside the kernel's ephemeral range (32768-60999 by default): while a drill has one
// stopped, toxiproxy keeps dialling it, and a dial inside that range can connect to itself and keep the port from the
// server when it starts again (ops/lib/net.ts).
export const DEFAULT_PORTS: StackPorts = {
  postgres: 22432,
  redis: 63790,
  redisCache: 63791,
  toxiproxy: 8474,
  postgresProxy: 25432,
  redisProxy: 26379,
  redisCacheProxy: 26380,
  nginx: 8080,
  nginxStatus: 8081,
  prometheus: 9090,
  alertmanager: 9093,
  postgresExporter: 9187,
  redisExporter: 9121,
  redisCacheExporter: 9122,
  victoriaLogs: 9428,
  otelcolHealth: 13133,
  apiBase: 3000,
  apiMetricsBase: 9400,
  workerMetricsBase: 9500,
}

/** Replicas per kind are capped so api metrics (9400+i) never reach worker metrics (9500+i). */
export const MAX_REPLICAS = 20

export function stackPorts(offset: number): StackPorts {
  if (!Number.isInteger(offset) || offset < 0 || offset > 1500) {
    throw new Error(`port offset must be an integer from 0 to 1500 (got ${offset}): set OPSDRILL_STACK_PORT_OFFSET accordingly`)
  }
  return Object.fromEntries(Object.entries(DEFAULT_PORTS).map(([k, v]) => [k, v + offset])) as unknown as StackPorts
}

/** The offset from OPSDRILL_STACK_PORT_OFFSET (default 0). */
export function envPortOffset(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.OPSDRILL_STACK_PORT_OFFSET
  if (raw === undefined || raw === '') return 0
  const n = Number(raw)
  if (!Number.isInteger(n)) throw new Error(`OPSDRILL_STACK_PORT_OFFSET must be an integer (got ${JSON.stringify(raw)})`)
  return n
}
