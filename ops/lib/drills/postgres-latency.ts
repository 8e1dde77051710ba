// postgres-latency: Postgres answers 100 ms late (toxiproxy latency toxic on the postgres proxy).
import { pgToxicDrill } from './postgres-toxic.ts'
import { APP } from './runner.ts'

export const postgresLatency = pgToxicDrill({
  name: 'postgres-latency',
  title: 'Postgres answers 100 ms late (toxiproxy latency toxic on the postgres proxy).',
  label: 'Postgres +100 ms latency',
  toxics: [{ name: 'drill', type: 'latency', attributes: { latency: 100, jitter: 0 } }],
  boundMs: APP.PG_QUERY_TIMEOUT_MS + 1000,
  boundText: 'PG_QUERY_TIMEOUT_MS + 1 s',
  budget: {
    redirect: 0.001,
    api: 0.001,
    settleSec: 2,
    why: 'every query still answers, 100 ms later, well inside the query timeout: nothing may fail',
  },
  alerts: ['ApiLatencyErrorBudgetBurn (if sustained)'],
})
