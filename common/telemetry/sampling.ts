// Head sampling of HTTP requests, decided before any span exists.
//
// The SDK samples inside startSpan, so a request it drops still pays for a span: ids, attribute checks, a context and
// a non-recording span carried through the request. On the redirect that cost 16% of the throughput with nothing
// sampled (docs/benchmarks.md). The gate takes the configured sampler's decision first, in a Fastify onRequest hook:
// - a request it drops gets no span at all (@fastify/otel's ignorePaths answers true for it);
// - a request it keeps on the ratio gets its server span sampled, since its dice are already cast;
// - a request with a `traceparent` under a parent-based sampler is kept, and the SDK follows the caller's decision.
// Spans that do not start a request (worker jobs, timers) are sampled by the configured sampler as before.
//
// The hook, ignorePaths and the sampler run one after another in one synchronous call chain for the same request
// (service/app.ts adds the hook, then registers @fastify/otel's plugin), so the decision is handed over in two fields,
// each checked against the request it was made for. Without a decision (another order of hooks), nothing is
// skipped and the SDK's sampler decides alone, as it would without the gate.
import { type Attributes, type Context, type Link, type SpanKind } from '@opentelemetry/api'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace'
import type { FastifyOtelInstrumentation } from '@fastify/otel'

/** The share of new traces to sample, and whether a caller's decision (traceparent) is followed. */
export interface SamplingRule {
  ratio: number
  parentBased: boolean
}

/**
 * The rule of the OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG the SDK itself understands; undefined for a sampler
 * the gate does not mirror (e.g. jaeger_remote), which is then left to the SDK alone.
 */
export function samplingRuleFromEnv(env: NodeJS.ProcessEnv = process.env): SamplingRule | undefined {
  const arg = env.OTEL_TRACES_SAMPLER_ARG === undefined ? 1 : Number(env.OTEL_TRACES_SAMPLER_ARG)
  // As the SDK does: a missing or invalid ratio is 1.
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1
  switch (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on') {
    case 'always_on':
      return { ratio: 1, parentBased: false }
    case 'always_off':
      return { ratio: 0, parentBased: false }
    case 'traceidratio':
      return { ratio, parentBased: false }
    case 'parentbased_always_on':
      return { ratio: 1, parentBased: true }
    case 'parentbased_always_off':
      return { ratio: 0, parentBased: true }
    case 'parentbased_traceidratio':
      return { ratio, parentBased: true }
    default:
      return undefined
  }
}

/** The SDK's own sampler for a rule. */
export function samplerFor(rule: SamplingRule): Sampler {
  const root = rule.ratio >= 1 ? new AlwaysOnSampler() : rule.ratio <= 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(rule.ratio)
  return rule.parentBased ? new ParentBasedSampler({ root }) : root
}

// @fastify/otel marks its request span with this attribute (ATTRIBUTE_NAMES.ROOT in its index.js).
const FASTIFY_ROOT = 'fastify.root'
const SAMPLED: SamplingResult = { decision: SamplingDecision.RECORD_AND_SAMPLED }

interface RequestLike {
  url: string
  headers: Record<string, string | string[] | undefined>
}

export class RequestGate {
  /** Requests decided by the gate since start: kept (a server span was started) and dropped (none was). */
  readonly decided = { kept: 0, dropped: 0 }
  private pending: { url: string; keep: 'ratio' | 'parent' | false } | undefined
  private admitted: 'ratio' | 'parent' | undefined

  readonly rule: SamplingRule
  private readonly random: () => number

  constructor(rule: SamplingRule, random: () => number = Math.random) {
    this.rule = rule
    this.random = random
  }

  /** Fastify onRequest hook, added before @fastify/otel's. */
  readonly hook = (req: RequestLike, _reply: unknown, done: () => void): void => {
    const keep =
      this.rule.parentBased && req.headers.traceparent !== undefined ? 'parent' : this.random() < this.rule.ratio ? 'ratio' : false
    this.pending = { url: req.url, keep }
    this.admitted = undefined
    done()
  }

  /** For @fastify/otel's ignorePaths, which it calls right after the hook above for the same request. */
  ignore(url: string): boolean {
    const p = this.pending
    this.pending = undefined
    if (p === undefined || p.url !== url) return false
    if (p.keep === false) {
      this.decided.dropped++
      return true
    }
    this.decided.kept++
    this.admitted = p.keep
    return false
  }

  /** The configured sampler, except that the server span of a request kept on the ratio is sampled. */
  sampler(inner: Sampler): Sampler {
    return {
      shouldSample: (ctx: Context, traceId: string, name: string, kind: SpanKind, attrs: Attributes, links: Link[]) => {
        if (this.admitted !== undefined && attrs[FASTIFY_ROOT] === '@fastify/otel') {
          const why = this.admitted
          this.admitted = undefined
          if (why === 'ratio') return SAMPLED
        }
        return inner.shouldSample(ctx, traceId, name, kind, attrs, links)
      },
      toString: () => `RequestGate{${inner.toString()}}`,
    }
  }
}

/** What a Fastify app takes from the SDK started by `--import`: @fastify/otel and the gate whose hook runs before it. */
export interface FastifyTracing {
  instrumentation: FastifyOtelInstrumentation
  gate: RequestGate | undefined
}

const KEY = Symbol.for('opsdrill.telemetry.fastify')
type WithTracing = typeof globalThis & { [KEY]?: FastifyTracing }

/** Set by the SDK's set-up (sdk.ts); undefined when tracing is off (OTEL_SDK_DISABLED, or no --import). */
export function fastifyTracing(): FastifyTracing | undefined {
  return (globalThis as WithTracing)[KEY]
}

export function setFastifyTracing(tracing: FastifyTracing): void {
  ;(globalThis as WithTracing)[KEY] = tracing
}
