// How the balancing run picks the quota to hold its slowed replica at, from the probes of its search.
import t from 'tap'
import { heldQuota } from '../../../ops/lib/capacity.ts'

void t.test('when a probe is outserved by a smaller quota, then it is not the quota the replica is held at', async (t) => {
  // The probes of a failed .ci/run (2026-12-06): the first, at the CPU the replica had used, read far below the rest.
  const probes = [
    { cores: 0.1999, rps: 121 },
    { cores: 0.1, rps: 579 },
    { cores: 0.025, rps: 113 },
  ]
  t.same(heldQuota(probes, 132), { cores: 0.025, rps: 113 })
})

void t.test('when the probes rise with the quota, then the fastest at or under the target is kept', async (t) => {
  // The full report's probes (docs/load-results.json), aiming at 150/s.
  const probes = [
    { cores: 0.0784, rps: 1838 },
    { cores: 0.0392, rps: 1181 },
    { cores: 0.0098, rps: 235 },
    { cores: 0.01, rps: 240 },
  ]
  t.same(heldQuota(probes, 150), { cores: 0.0098, rps: 235 }, 'none under the target: the slowest')
  t.same(heldQuota([...probes, { cores: 0.006, rps: 120 }, { cores: 0.007, rps: 140 }], 150), { cores: 0.007, rps: 140 })
})
