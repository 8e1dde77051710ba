// The house rule (STYLE.md): service/ and worker/ share code only through common/; neither imports the other.
module.exports = {
  forbidden: [
    {
      name: 'service-not-worker',
      severity: 'error',
      comment: 'the API must not import worker internals',
      from: { path: '^service/' },
      to: { path: '^worker/' },
    },
    {
      name: 'worker-not-service',
      severity: 'error',
      comment: 'the worker must not import API internals',
      from: { path: '^worker/' },
      to: { path: '^service/' },
    },
    {
      name: 'common-is-a-leaf',
      severity: 'error',
      comment: 'common/ is shared by both processes and imports neither',
      from: { path: '^common/' },
      to: { path: '^(service|worker|ops)/' },
    },
    {
      name: 'runtime-imports-are-dependencies',
      severity: 'error',
      comment: 'the image installs with npm ci --omit=dev: what the API or the worker loads must be in dependencies',
      from: { path: '^(service|worker|common)/' },
      to: { dependencyTypes: ['npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'], dependencyTypesNot: ['type-only'] },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
}
