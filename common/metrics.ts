// Every opsdrill metric, in one place. Names follow https://prometheus.io/docs/practices/naming/ with the
// `opsdrill_` prefix and base units. Dashboards and alert rules refer to these names; the proof test
// (test/observability/promql.test.ts) checks each of their queries returns data.
import client from 'prom-client'

export const PREFIX = 'opsdrill_'
// An OpenMetrics registry: exemplars (trace ids on latency histograms) need it. The scrape endpoint still serves the
// classic text format to clients that do not ask for OpenMetrics.
export const registry = new client.Registry<client.RegistryContentType>()
registry.setContentType(client.openMetricsContentType)

export type MetricsFormat = 'openmetrics' | 'text'

let rendering: Promise<unknown> = Promise.resolve()

/**
 * The registry as OpenMetrics (with exemplars) or the classic text format, one render at a time. prom-client's
 * `metrics()` reads the registry-wide content type, so two concurrent scrapes could get each other's format, and an
 * OpenMetrics render strips `_total` from every counter's registered name for good (prometheus/client_js#829): after
 * Prometheus's first scrape, the text format named `opsdrill_http_requests_shed_total` `opsdrill_http_requests_shed`.
 * The names are put back after each render.
 */
export function renderMetrics(format: MetricsFormat): Promise<{ body: string; contentType: string }> {
  const run = async () => {
    const counters = registry.getMetricsAsArray().filter((m) => m instanceof client.Counter) as unknown as { name: string }[]
    const names = counters.map((m) => m.name)
    registry.setContentType(format === 'openmetrics' ? client.openMetricsContentType : client.prometheusContentType)
    try {
      return { body: await registry.metrics(), contentType: registry.contentType }
    } finally {
      counters.forEach((m, i) => (m.name = names[i]!))
    }
  }
  const result = rendering.then(run)
  rendering = result.catch(() => undefined)
  return result
}

// Seconds buckets sized for a 100 ms / 500 ms latency SLO on the redirect and API routes.
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const JOB_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

const counter = (name: string, help: string, labelNames: string[] = []) =>
  new client.Counter({ name: PREFIX + name, help, labelNames, registers: [registry] })
// Gauges read at scrape time get their reader later (observeGauge), from the module that owns the state.
const readers = new Map<string, (g: client.Gauge) => void | Promise<void>>()
const gauge = (name: string, help: string, labelNames: string[] = []) =>
  new client.Gauge({
    name: PREFIX + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      return readers.get(PREFIX + name)?.(this)
    },
  })

/** Sets the function that fills a gauge at each scrape; the scrape waits for it when it returns a promise. */
export function observeGauge(g: client.Gauge, read: (g: client.Gauge) => void | Promise<void>): void {
  readers.set((g as unknown as { name: string }).name, read)
}
const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
  new client.Histogram({ name: PREFIX + name, help, labelNames, buckets, registers: [registry], enableExemplars: true })

export const metrics = {
  // HTTP (API)
  httpDuration: histogram(
    'http_request_duration_seconds',
    'HTTP request duration by route template.',
    ['method', 'route', 'status_code'],
    HTTP_BUCKETS,
  ),
  httpInFlight: gauge('http_requests_in_flight', 'HTTP requests being served.'),
  httpShed: counter('http_requests_shed_total', 'Requests answered 503 by load shedding, by reason.', ['reason']),
  // Redirect cache
  cacheLookups: counter('cache_lookups_total', 'Redirect cache lookups by result: l1_hit, redis_hit, negative_hit, miss.', ['result']),
  cacheSingleFlightWaits: counter(
    'cache_singleflight_waits_total',
    'Lookups that joined an in-flight Postgres load instead of starting one.',
  ),
  cacheErrors: counter('cache_errors_total', 'Redis cache operations that failed, by operation.', ['operation']),
  cacheFallbacks: counter('cache_fallbacks_total', 'Redirects served from Postgres because the Redis cache failed (fail-open).'),
  cacheStaleWritesRefused: counter(
    'cache_stale_writes_refused_total',
    'Cache write-backs refused because the entry in Redis was a newer version or a tombstone (a lookup raced a change).',
  ),
  cacheInvalidations: counter('cache_invalidations_total', 'Cache invalidations by origin: local (this replica) or remote (pub/sub).', [
    'origin',
  ]),
  // Business
  linksCreated: counter('links_created_total', 'Links created.'),
  redirects: counter('redirects_total', 'Redirects by outcome: found, not_found, gone.', ['outcome']),
  clicksUncounted: counter(
    'clicks_uncounted_total',
    'Redirects answered without recording a click, by reason: head (a HEAD request), prefetch (a browser prefetch), bot.',
    ['reason'],
  ),
  clicksEnqueued: counter('clicks_enqueued_total', 'Clicks added to the queue in Redis, directly or replayed from the spool.'),
  clicksDropped: counter('clicks_dropped_total', 'Clicks dropped before reaching the queue or the spool, by reason.', ['reason']),
  clickEnqueueRetries: counter('click_enqueue_retries_total', 'Click batch enqueues tried again after a failure.'),
  clicksSpooled: counter('clicks_spooled_total', 'Clicks written (and fdatasync-ed) to the spool because Redis was unavailable.'),
  clicksReplayed: counter('clicks_replayed_total', 'Spooled clicks added to the queue once Redis was back.'),
  clickSpoolBytes: gauge('click_spool_bytes', 'Bytes of clicks in the spool waiting for Redis.'),
  clickBufferSize: gauge('click_buffer_size', 'Clicks buffered in the API waiting for the next bulk enqueue.'),
  clicksIngested: counter('clicks_ingested_total', 'Clicks stored in Postgres by the worker (duplicates excluded).'),
  clicksDuplicate: counter('clicks_duplicate_total', 'Click jobs delivered again whose click was already stored.'),
  clicksDiscarded: counter(
    'clicks_discarded_total',
    'Click jobs the worker completed without storing the click, by reason (link_deleted).',
    ['reason'],
  ),
  // Queue and worker
  jobsAdded: counter('jobs_added_total', 'Jobs added, by queue.', ['queue']),
  jobsCompleted: counter('jobs_completed_total', 'Jobs completed, by queue.', ['queue']),
  jobsFailed: counter('jobs_failed_total', 'Job attempts that failed, by queue.', ['queue']),
  jobsRetried: counter('jobs_retried_total', 'Failed job attempts that will be retried, by queue.', ['queue']),
  jobsStalled: counter('jobs_stalled_total', 'Jobs detected as stalled and moved back to wait, by queue.', ['queue']),
  jobsDeadLettered: counter('jobs_dead_lettered_total', 'Jobs that exhausted their attempts and moved to the dead-letter queue.', [
    'queue',
  ]),
  jobWait: histogram('job_wait_seconds', 'Time from enqueue to the start of processing.', ['queue'], JOB_BUCKETS),
  jobProcessing: histogram('job_processing_seconds', 'Job processing time, by queue and outcome.', ['queue', 'outcome'], JOB_BUCKETS),
  queueJobs: gauge('queue_jobs', 'Jobs in a queue by state (waiting, active, delayed, failed, completed, prioritized, waiting-children).', [
    'queue',
    'state',
  ]),
  queueOldestWaitingAge: gauge('queue_oldest_waiting_age_seconds', 'Age of the oldest waiting job, 0 when none waits.', ['queue']),
  workerBatchSize: histogram('worker_click_batch_size', 'Clicks per Postgres batch write.', [], [1, 5, 10, 25, 50, 100, 250, 500, 1000]),
  // Postgres and Redis clients
  pgPool: gauge('pg_pool_connections', 'pg pool connections by state: total, idle, waiting (clients queued for one).', ['state']),
  pgQueryDuration: histogram(
    'pg_query_duration_seconds',
    'Postgres query time by operation and outcome.',
    ['operation', 'outcome'],
    HTTP_BUCKETS,
  ),
  pgErrors: counter('pg_errors_total', 'Postgres client errors by kind.', ['kind']),
  redisReconnects: counter('redis_reconnects_total', 'Redis reconnect attempts by client role.', ['client']),
  redisErrors: counter('redis_errors_total', 'Redis client errors by client role.', ['client']),
  dependencyUp: gauge(
    'dependency_up',
    'Whether this process reaches a dependency (1) or not (0), probed at each scrape: postgres, redis (queues), redis_cache.',
    ['dependency'],
  ),
  // Runtime extras not in prom-client's defaults
  eventLoopUtilization: gauge('nodejs_eventloop_utilization_ratio', 'Event-loop utilisation over the last scrape interval (0..1).'),
  build: gauge('build_info', 'Always 1; labels name the running version.', ['version', 'service']),
}

/** Default Node metrics (GC, heap, handles, event-loop lag) with the project prefix, plus ELU. */
let runtimeCollected = false
export function collectRuntimeMetrics(labels: { service: string; instance_id: string }): void {
  if (runtimeCollected) return
  runtimeCollected = true
  registry.setDefaultLabels(labels)
  client.collectDefaultMetrics({ register: registry, prefix: PREFIX, eventLoopMonitoringPrecision: 20 })
  // prom-client also names three gauges `*_total`, a suffix the naming rules keep for counters (promtool flags
  // them); `nodejs_active_resources{type}` carries the same information under a gauge's name.
  for (const name of ['active_handles', 'active_requests', 'active_resources']) registry.removeSingleMetric(`${PREFIX}nodejs_${name}_total`)
  let last = performance.eventLoopUtilization()
  observeGauge(metrics.eventLoopUtilization, (g) => {
    const now = performance.eventLoopUtilization()
    g.set(performance.eventLoopUtilization(now, last).utilization)
    last = now
  })
  metrics.build.set({ version: process.env.OPSDRILL_VERSION ?? 'dev', service: labels.service }, 1)
}

/** Registers a pool whose size is read at scrape time. */
export function observePgPool(pool: { totalCount: number; idleCount: number; waitingCount: number }): void {
  observeGauge(metrics.pgPool, (g) => {
    g.set({ state: 'total' }, pool.totalCount)
    g.set({ state: 'idle' }, pool.idleCount)
    g.set({ state: 'waiting' }, pool.waitingCount)
  })
}

/**
 * Probes each dependency at scrape time into opsdrill_dependency_up. Store health is reported here, not by readiness:
 * a replica that cannot reach Redis or Postgres still serves what it can (cached redirects, fail-open), so it stays in
 * the load balancer and the outage shows as a metric and an alert (DependencyUnreachable) instead.
 */
export function observeDependencies(probes: Record<string, () => Promise<unknown>>, timeoutMs: number): void {
  observeGauge(metrics.dependencyUp, async (g) => {
    await Promise.all(
      Object.entries(probes).map(async ([dependency, probe]) => {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs)
        })
        try {
          await Promise.race([probe(), timeout])
          g.set({ dependency }, 1)
        } catch {
          g.set({ dependency }, 0)
        } finally {
          clearTimeout(timer)
        }
      }),
    )
  })
}
