import t from 'tap'
import { testApp, login, createLinkVia } from '../helpers/app.ts'
import { metrics, renderMetrics } from '../../common/metrics.ts'

const count = async (route: string, status: string) => {
  const m = await metrics.httpDuration.get()
  return m.values
    .filter(
      (v) => v.metricName === 'opsdrill_http_request_duration_seconds_count' && v.labels.route === route && v.labels.status_code === status,
    )
    .reduce((n, v) => n + v.value, 0)
}

void t.test('when requests are served without a sampled trace, then every one is counted by route template and status', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/m')
  const before302 = await count('/:code', '302')
  const before404 = await count('/:code', '404')
  for (let i = 0; i < 5; i++) await app.inject({ method: 'GET', url: `/${link.code}` })
  await app.inject({ method: 'GET', url: '/nosuchcode' })
  t.equal((await count('/:code', '302')) - before302, 5)
  t.equal((await count('/:code', '404')) - before404, 1)
})

void t.test('when /metrics is read as Prometheus text, then business and cache counters moved', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/n')
  await app.inject({ method: 'GET', url: `/${link.code}` })
  await app.inject({ method: 'GET', url: `/${link.code}` })
  const { body: text } = await renderMetrics('text')
  t.match(text, /opsdrill_links_created_total(\{[^}]*\})? [1-9]/)
  t.match(text, /opsdrill_redirects_total\{[^}]*outcome="found"[^}]*\} [1-9]/)
  t.match(text, /opsdrill_cache_lookups_total\{[^}]*result="l1_hit"[^}]*\} [1-9]/)
  t.match(text, /opsdrill_pg_query_duration_seconds_count\{[^}]*operation="link_by_code"[^}]*\} [1-9]/)
})

void t.test('when Prometheus has scraped OpenMetrics, then the text format still names counters with _total', async (t) => {
  metrics.httpShed.inc({ reason: 'test' })
  const [open, text] = await Promise.all([renderMetrics('openmetrics'), renderMetrics('text')])
  t.match(open.contentType, /openmetrics/)
  t.match(open.body, /^# TYPE opsdrill_http_requests_shed counter$/m, 'OpenMetrics names the counter family without _total')
  t.match(open.body, /^opsdrill_http_requests_shed_total\{[^}]*reason="test"[^}]*\} [1-9]/m, 'and its sample with it')
  t.match(text.contentType, /^text\/plain/)
  t.match(text.body, /^# TYPE opsdrill_http_requests_shed_total counter$/m, 'the text format keeps the registered name')
  t.match(text.body, /^opsdrill_http_requests_shed_total\{[^}]*reason="test"[^}]*\} [1-9]/m)
  t.notMatch(text.body, /^opsdrill_http_requests_shed\{/m)
  const again = await renderMetrics('text')
  t.match(again.body, /^opsdrill_http_requests_shed_total\{/m, 'and keeps it on the next render')
})
