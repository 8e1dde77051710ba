// The registry of drills: one file per drill (its fault, load and criteria), listed here in the order `all` runs
// them. docs/drills.md is the game-day script for each; runner.ts holds what they share.
import { alertDrill } from './alerts.ts'
import { apiLedger } from './api-ledger.ts'
import { apiSigkill } from './api-sigkill.ts'
import { apiSigterm } from './api-sigterm.ts'
import { cpuStarvation } from './cpu-starvation.ts'
import { postgresBlackhole } from './postgres-blackhole.ts'
import { postgresDown } from './postgres-down.ts'
import { postgresLatency } from './postgres-latency.ts'
import { redisDown } from './redis-down.ts'
import { redisLatency } from './redis-latency.ts'
import { rollingRestart } from './rolling-restart.ts'
import type { Drill } from './runner.ts'
import { scaleOut } from './scale-out.ts'
import { workerLedger } from './worker-ledger.ts'
import { workerSigterm } from './worker-sigterm.ts'

export const DRILLS: Drill[] = [
  apiSigterm,
  apiSigkill,
  rollingRestart,
  workerSigterm,
  workerLedger,
  apiLedger,
  redisDown,
  postgresDown,
  postgresLatency,
  postgresBlackhole,
  redisLatency,
  cpuStarvation,
  scaleOut,
  alertDrill,
]

export function drillNamed(name: string): Drill | undefined {
  return DRILLS.find((x) => x.name === name)
}
