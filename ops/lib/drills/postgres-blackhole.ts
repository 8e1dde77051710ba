// postgres-blackhole: Postgres stops answering without closing connections (toxiproxy timeout toxic 0, both ways).
import { pgToxicDrill } from './postgres-toxic.ts'
import { APP } from './runner.ts'

export const postgresBlackhole = pgToxicDrill({
  name: 'postgres-blackhole',
  title: 'Postgres stops answering without closing connections (toxiproxy timeout toxic 0, both directions).',
  label: 'Postgres blackhole (timeout toxic 0)',
  toxics: [
    { name: 'drill', type: 'timeout', attributes: { timeout: 0 } },
    { name: 'drill-up', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } },
  ],
  boundMs: APP.PG_CONNECT_TIMEOUT_MS + APP.PG_QUERY_TIMEOUT_MS + 1000,
  boundText: 'PG_CONNECT_TIMEOUT_MS (pool wait) + PG_QUERY_TIMEOUT_MS + 1 s',
  budget: {
    redirect: 0.01,
    api: 1,
    // A request caught in the blackhole when it is removed still ends by its timeouts.
    settleSec: Math.ceil((APP.PG_CONNECT_TIMEOUT_MS + APP.PG_QUERY_TIMEOUT_MS) / 1000) + 1,
    why: 'cached redirects are served from Redis; every Postgres-backed request fails by design, bounded in time instead (its timeouts)',
  },
  alerts: ['ApiAvailabilityErrorBudgetBurn (if sustained)', 'PostgresPoolSaturated (for 5m)'],
})
