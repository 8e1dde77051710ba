// Every k6 scenario's short form against a native stack on offset ports, and what each comparison claims: the cache
// speeds redirects up and spares Postgres, nginx shares load evenly, with least_conn (against round-robin) keeps a
// slow replica from setting the tail, and routes around a killed replica, a second API replica (one core each)
// carries 1.6x the logins of one, two workers drain a backlog faster than one, and the native autoscaler adds
// replicas under a spike and removes them after it. Measurements on a shared 2-core box are noisy, so
// claims compare ratios with margins measured side by side in one run, never absolute numbers.
import t from 'tap'
import { cpus, loadavg } from 'node:os'
import { autoscaleRun, balancing, caching, scaling, scenario, SLOW_REPLICA_DIVISOR, type RunOptions } from '../../ops/load.ts'
import { API_FACTOR, DRAIN_FACTOR } from '../../ops/lib/drills/scale-out.ts'
import { stackAt } from '../../ops/lib/stack/index.ts'

// The file as a whole (tap's default is 120 s per file, .taprc).
t.setTimeout(12 * 60_000)
const stack = stackAt({ offset: 1000, log: (line) => t.comment(line) })
// On a box already busy with other work (here: other suites, other engineers), scheduler delay sets tail latency;
// the latency bounds are widened by the load per core, the error bounds never are. The factor is reported.
const loadPerCore = loadavg()[0]! / cpus().length
const SLO_LATENCY_FACTOR = loadPerCore > 1 ? String(Math.min(10, Math.ceil(loadPerCore * 2))) : '1'
t.comment(`load per core ${loadPerCore.toFixed(2)}: SLO_LATENCY_FACTOR=${SLO_LATENCY_FACTOR}`)
const o: RunOptions = { stack, short: true, say: (line) => t.comment(line), env: { SLO_LATENCY_FACTOR } }
// With one of 2 replicas held to a fixed 0.05 core, 5 runs of balancing() here (2026-12-05, box otherwise idle): redirect
// p99 least_conn 83, 85, 80, 79, 62 ms against round-robin 1528, 11676, 1748, 4636, 1109 ms; the slow replica's share
// 0.21-0.27 with least_conn against 0.50 with round-robin. A later run where it nearly kept up (0.44 vs 0.50), and .ci/run
// runs with the quota sized from CPU per request (0.42-0.46 vs 0.50; round-robin's p99 only 176-192 ms), are why the
// quota is now found by probing the replica's saturated throughput under it (ops/load.ts SLOW_REPLICA_DIVISOR), at 600
// redirects/s: in 2 runs here it was held to 0.005 core (47-59/s against its share's 299/s) and least_conn sent it
// 0.020-0.023 of the requests with a p99 of 5.3-6.1 ms, against round-robin's 0.50 and 15 s (nginx's read timeout).
// The claims are asserted at 1.1x for the share and 4x for the p99, far inside those margins.
const BALANCING_P99_FACTOR = 4
const BALANCING_SHARE_FACTOR = 1.1

t.before(async () => {
  await stack.up({ api: 2, worker: 1 })
})
t.teardown(() => stack.down())

for (const name of ['smoke', 'average', 'stress', 'spike', 'soak'] as const) {
  void t.test(`when the ${name} scenario runs its short form, then its thresholds hold`, async (t) => {
    t.setTimeout(120_000)
    const run = await scenario(name, o)
    t.same(run.failedThresholds, [], `no threshold crossed (SLO_LATENCY_FACTOR=${SLO_LATENCY_FACTOR})`)
    t.equal(run.exitCode, 0, `k6 exits 0 (see ${run.dir}/k6.log)`)
    t.ok(run.figures.requests > 50, `requests were made (${run.figures.requests})`)
    t.ok((run.summary.metrics.checks?.value ?? 0) > 0.99, 'checks passed')
  })
}

void t.test(
  'when Postgres is 20 ms away and the cache is on, then nearly every redirect hits it, p95 is 2x faster, it serves 1.3x more within the SLO, and Postgres sees far fewer lookups than with it off',
  async (t) => {
    t.setTimeout(300_000)
    const r = await caching(o)
    const [on, off] = [r.on.run.figures.redirect!, r.off.run.figures.redirect!]
    t.comment(
      `hit ratio ${r.on.hitRatio.toFixed(3)} of ${r.on.lookups} lookups; p95 ${on.p95} vs ${off.p95} ms, p99 ${on.p99} vs ${off.p99} ms; max within SLO ${r.on.maxRps.toFixed(0)} vs ${r.off.maxRps.toFixed(0)} req/s; PG lookups/s ${r.on.pgQueriesPerSec.toFixed(1)} vs ${r.off.pgQueriesPerSec.toFixed(1)}`,
    )
    t.equal(r.on.run.figures.errorRate, 0, 'no errors with the cache on')
    t.ok(r.on.lookups > r.on.run.figures.requests * 0.9, `the cache was looked up for the redirects (${r.on.lookups} lookups)`)
    // Over the whole run: the warm-up's first lookup of each link (200 cold misses) is in it.
    t.ok(r.on.hitRatio > 0.85, `hit ratio is high (${r.on.hitRatio.toFixed(3)})`)
    t.ok(r.off.run.figures.requests > 500, `the cache-off run carried traffic (${r.off.run.figures.requests} redirects)`)
    t.equal(r.off.lookups, 0, 'with CACHE_ENABLED=false nothing is looked up in the cache')
    t.ok(r.off.bypassed > r.off.run.figures.requests * 0.9, `every redirect bypassed it (${r.off.bypassed})`)
    t.ok(r.on.pgQueriesPerSec < r.off.pgQueriesPerSec * 0.35, 'Postgres link lookups fall by well over half')
    t.ok(r.off.pgQueriesPerSec > 0.8 * r.off.run.figures.rps, 'with the cache off, each redirect costs a Postgres lookup')
    // p95 only: on this shared box the cache-on p99 is set by the scheduler when other work runs (3 ms alone, 36 ms
    // beside other helpers' typechecks, against 32-40 ms with the cache off); the report gives both.
    t.ok(on.p95 * 2 < off.p95, `redirect p95 ${on.p95} ms with the cache on, ${off.p95} ms with it off: at least 2x apart`)
    t.ok(
      r.on.maxRps > r.off.maxRps * 1.3,
      `highest throughput within the SLO ${r.on.maxRps.toFixed(0)} req/s with the cache on, ${r.off.maxRps.toFixed(0)} with it off: at least 1.3x`,
    )
    t.notOk(
      stack.replicas('api').some((p) => p.env?.CACHE_ENABLED),
      'the replicas are back to the cache on',
    )
  },
)

void t.test(
  `when one of 2 replicas is held to a CPU quota under which it serves at most 1/${SLOW_REPLICA_DIVISOR} of its share (or less than its share at the least quota, 0.01 core), then least_conn keeps redirect p99 at least ${BALANCING_P99_FACTOR}x lower than round-robin by sending it less; at full speed each gets its share within 15%, and a killed replica costs no error`,
  async (t) => {
    t.setTimeout(240_000)
    const r = await balancing(o)
    const [lc, rr] = [r.byAlgorithm.least_conn, r.byAlgorithm.round_robin]
    const p99 = (x: typeof lc) => x.run.figures.redirect?.p99 ?? Number.NaN
    t.comment(
      `even: X-Upstream ${JSON.stringify(r.even.sharesK6)}; Prometheus ${JSON.stringify(r.even.sharesPrometheus)}; ${r.slowed} served ${r.shareRps.toFixed(0)}/s with ${r.usedCores.toFixed(3)} core, slowed to ${r.slowCores} core, where it served ${r.held.rps.toFixed(0)}/s saturated (probes ${r.held.probes.map((p) => `${p.cores}: ${p.rps.toFixed(0)}/s`).join(', ')}): p99 least_conn ${p99(lc)} ms, round-robin ${p99(rr)} ms; its share ${lc.sharesK6[r.slowed]?.toFixed(3)} vs ${rr.sharesK6[r.slowed]?.toFixed(3)} (Prometheus ${lc.sharesPrometheus[r.slowed]?.toFixed(3)} vs ${rr.sharesPrometheus[r.slowed]?.toFixed(3)}); errors ${lc.run.figures.errorRate} vs ${rr.run.figures.errorRate}; failover errors ${r.failover.figures.errorRate}`,
    )
    for (const [replica, share] of Object.entries(r.even.sharesK6))
      t.ok(Math.abs(share - 0.5) <= 0.5 * 0.15, `${replica} share by X-Upstream ${share.toFixed(3)}`)
    for (const [replica, share] of Object.entries(r.even.sharesPrometheus))
      t.ok(Math.abs(share - 0.5) <= 0.5 * 0.15, `${replica} share by Prometheus ${share.toFixed(3)}`)

    // The premise: saturated under its quota, the slowed replica serves less than round-robin sends it.
    t.ok(
      r.held.rps < r.shareRps,
      `${r.slowed} at ${r.slowCores} core serves ${r.held.rps.toFixed(0)}/s, below its share of ${r.shareRps.toFixed(0)}/s`,
    )
    t.ok(
      p99(lc) * BALANCING_P99_FACTOR < p99(rr),
      `redirect p99 with ${r.slowed} slowed: ${p99(lc)} ms with least_conn, ${p99(rr)} ms with round-robin: at least ${BALANCING_P99_FACTOR}x apart`,
    )
    for (const by of ['sharesK6', 'sharesPrometheus'] as const) {
      const [a, b] = [lc[by][r.slowed]!, rr[by][r.slowed]!]
      t.ok(a * BALANCING_SHARE_FACTOR < b, `${r.slowed}'s share (${by}): ${a.toFixed(3)} with least_conn, ${b.toFixed(3)} with round-robin`)
    }
    t.equal(lc.run.figures.errorRate, 0, 'no errors with least_conn and a slow replica')
    t.equal(stack.balancing(), 'least_conn', 'nginx is back to least_conn')

    t.equal(r.failover.figures.errorRate, 0, `no error while ${r.killed} was killed (${r.failover.figures.requests} requests)`)
    t.ok(r.failover.figures.requests > 500, 'the failover run carried traffic')
    // Probed until every part answers, up to 15 s: one probe of the stack's status can time out on a busy box (it
    // did once right after the failover run); the claim is that the stack is whole again, and the failure names who.
    let unhealthy: string[] = []
    for (let i = 0; i < 15; i++) {
      unhealthy = (await stack.status())
        .filter((p) => !p.healthy)
        .map((p) => `${p.name}${p.running ? ' (running, probe failed)' : ' (not running)'}`)
      if (unhealthy.length === 0) break
      await new Promise((ok) => setTimeout(ok, 1000))
    }
    t.same(unhealthy, [], `the killed replica is back and every part is healthy within 15 s`)
  },
)

void t.test(
  `when logins ramp until the SLO breaks, then 2 API replicas of half a core each carry at least ${API_FACTOR}x what 1 does, and 2 workers drain a backlog at least ${DRAIN_FACTOR}x as fast as 1`,
  async (t) => {
    t.setTimeout(400_000)
    const r = await scaling(o)
    const [one, two] = r.drains
    t.comment(
      `capacity ${r.ramps.map((x) => `${x.replicas} API ${x.capacity.toFixed(0)}`).join(', ')} logins/s (x${r.factor.toFixed(2)}); drain ${one!.clicksPerSec.toFixed(0)} vs ${two!.clicksPerSec.toFixed(0)} clicks/s`,
    )
    for (const ramp of r.ramps) {
      t.ok(ramp.aborted, `the ramp against ${ramp.replicas} replica(s) ran until its thresholds aborted it (k6 exit ${ramp.run.exitCode})`)
      t.ok(ramp.capacity > 10, `${ramp.replicas} replica(s) served logins within the SLO (${ramp.capacity.toFixed(1)}/s)`)
    }
    t.ok(r.factor >= API_FACTOR, `2 replicas carry x${r.factor.toFixed(2)} the logins of 1 within the SLO (>= ${API_FACTOR})`)
    t.ok(one!.jobs >= 2_000 && two!.jobs >= 2_000, `each backlog held its 2000 jobs (${one!.jobs}, ${two!.jobs})`)
    t.same([one!.stored, two!.stored], [one!.clicks, two!.clicks], `every click of each backlog is stored once (${one!.clicks} each)`)
    const f = two!.clicksPerSec / one!.clicksPerSec
    t.ok(f >= DRAIN_FACTOR, `two workers drain x${f.toFixed(2)} as fast (>= ${DRAIN_FACTOR})`)
    t.equal(stack.replicas('api').length, 2, 'replicas are restored')
    t.notOk(
      stack.replicas('api').some((p) => p.env?.RATE_LIMIT_AUTH_MAX),
      'the replicas are back to the default rate limits',
    )
    t.equal(stack.replicas('worker').length, 1, 'workers are restored')
  },
)

void t.test(
  'when a spike of logins meets the native autoscaler, then API replicas rise above the HPA minimum and come back to it',
  async (t) => {
    t.setTimeout(300_000)
    const r = await autoscaleRun(o)
    t.comment(
      `API replicas ${r.replicas.map((x) => x.api).join('')}; decisions ${r.decisions.map((d) => `${d.kind} ${d.from}->${d.to}`).join(', ')}`,
    )
    t.equal(r.run.exitCode, 0, `the spike's thresholds held (errors < 1%; ${r.run.dir}/k6.log)`)
    t.ok(r.maxApi > r.rules.api.min, `replicas rose above the minimum ${r.rules.api.min} (to ${r.maxApi})`)
    t.ok(r.maxApi <= r.rules.api.max, `and stayed within the maximum ${r.rules.api.max}`)
    t.ok(
      r.decisions.some((d) => d.kind === 'api' && d.to > d.from),
      'the autoscaler scaled the API up',
    )
    t.ok(
      r.decisions.some((d) => d.kind === 'api' && d.to < d.from),
      'and back down',
    )
    t.equal(r.finalApi, r.rules.api.min, `after the spike and the ${r.scaleDownWindowSec} s window the API is back at ${r.rules.api.min}`)
    t.equal(stack.replicas('api').length, 2, 'replicas are restored')
  },
)
